"""mitmproxy addon equivalent to the kimifix rules that fire in the bench
(figure 5): doubled /v1 and X-Msh-Platform kimi_code_cli -> kimi_cli."""
import re

_DOUBLE_V1 = re.compile(r"^/coding/v1/v1(/v1)*(/.*)?$")


class KimiFix:
    def requestheaders(self, flow):
        req = flow.request
        path, q, query = req.path.partition("?")
        m = _DOUBLE_V1.match(path)
        if m:
            req.path = "/coding/v1" + (m.group(2) or "") + (q + query)
        if req.headers.get("X-Msh-Platform") == "kimi_code_cli":
            req.headers["X-Msh-Platform"] = "kimi_cli"
        req.headers["Host"] = "api.kimi.com"


addons = [KimiFix()]
