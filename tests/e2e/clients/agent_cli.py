"""Drives an agent CLI non-interactively: `python3 agent_cli.py claude|kimi`.

claude: Claude Code's native binary (E2E_CLAUDE), `claude -p hi`, with
  ANTHROPIC_BASE_URL=E2E_BASE_URL and ANTHROPIC_API_KEY=E2E_API_KEY, trust
  through NODE_EXTRA_CA_CERTS, and everything but the API call switched off.
kimi: kimi-code's dist/main.mjs (E2E_KIMI) on an official Node 24 (E2E_NODE24),
  `-p hi` configured from the environment (field-notes section 6).
Both get a private empty HOME. E2E_WRAP prefixes the client only. The status is
read from the client's own error text ('API Error: 404', 'auth_error: 403');
a zero exit with an answer counts as 200. The harness asserts on the record."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

which = sys.argv[1]
out = common.Out()
with tempfile.TemporaryDirectory() as home:
    e = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home + "/.config", NO_COLOR="1", CI="1")
    if which == "claude":
        e.update(ANTHROPIC_BASE_URL=common.env("E2E_BASE_URL"), ANTHROPIC_API_KEY=common.env("E2E_API_KEY"),
                 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1",
                 DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1", DISABLE_BUG_COMMAND="1",
                 CLAUDE_CODE_MAX_RETRIES="0", ANTHROPIC_MODEL=common.env("E2E_MODEL", "kimi-for-coding"),
                 ANTHROPIC_SMALL_FAST_MODEL=common.env("E2E_MODEL", "kimi-for-coding"))
        cmd = [common.env("E2E_CLAUDE"), "-p", "hi"]
    else:
        e.update(KIMI_CODE_HOME=home + "/kimi", KIMI_MODEL_NAME=common.env("E2E_MODEL", "kimi-for-coding"),
                 KIMI_MODEL_API_KEY=common.env("E2E_API_KEY"), KIMI_MODEL_PROVIDER_TYPE="kimi",
                 KIMI_MODEL_BASE_URL=common.env("E2E_BASE_URL"), KIMI_CODE_NO_AUTO_UPDATE="1")
        cmd = [common.env("E2E_NODE24"), common.env("E2E_KIMI"), "-p", "hi"]
    wrap = common.env("E2E_WRAP", "").split()
    p = subprocess.run(wrap + cmd, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=float(common.env("E2E_TIMEOUT", "60")))
text = (p.stdout + p.stderr).decode("utf-8", "replace")
m = re.search(r"(?:API Error:|auth_error:|_error:|status code) ?(\d{3})\b", text)
out.statuses.append(int(m.group(1)) if m else (200 if p.returncode == 0 else 0))
out.facts["exit"] = p.returncode
out.body = text.encode()
out.done()
