// HttpProbe.java - Java 17 java.net.http.HttpClient driver (single-file
// source launch: `java HttpProbe.java`). The JDK's own TLS (JSSE) with its
// own trust store: no hook sees its plaintext, and it reads no CA variable
// (tests/e2e/README.md "Driver interface"; issue "Trust both ways").
//   E2E_URL, E2E_METHOD, E2E_HEADERS ("Name: value" lines), E2E_BODY_FILE,
//   E2E_REPEAT (requests on one client)
// Prints "status: N" per response, "exit: 0", then "body:" and the last body.
// A TLS failure prints "error: <exception>" and exits 2.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

public class HttpProbe {
    static String env(String k, String d) {
        String v = System.getenv(k);
        return v == null || v.isEmpty() ? d : v;
    }

    public static void main(String[] args) throws Exception {
        String url = env("E2E_URL", args.length > 0 ? args[0] : null);
        String bodyFile = env("E2E_BODY_FILE", null);
        byte[] body = bodyFile == null ? null : Files.readAllBytes(Path.of(bodyFile));
        String method = env("E2E_METHOD", body == null ? "GET" : "POST");
        int repeat = Integer.parseInt(env("E2E_REPEAT", "1"));
        HttpClient client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(20))
                .build();
        StringBuilder out = new StringBuilder();
        String last = "";
        try {
            for (int i = 0; i < repeat; i++) {
                HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url))
                        .timeout(Duration.ofSeconds(30))
                        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                                                     : HttpRequest.BodyPublishers.ofByteArray(body));
                for (String line : env("E2E_HEADERS", "").split("\n")) {
                    int c = line.indexOf(':');
                    if (c > 0) {
                        String name = line.substring(0, c).trim();
                        // the JDK sets these itself and refuses them from callers
                        if (!name.equalsIgnoreCase("Host") && !name.equalsIgnoreCase("Content-Length"))
                            b.header(name, line.substring(c + 1).trim());
                    }
                }
                HttpResponse<String> r = client.send(b.build(), HttpResponse.BodyHandlers.ofString());
                out.append("status: ").append(r.statusCode()).append('\n');
                last = r.body();
            }
        } catch (Exception e) {
            System.out.print(out);
            System.out.println("error: " + e);
            System.out.println("exit: 2");
            System.out.println("body:");
            System.exit(2);
        }
        System.out.print(out);
        System.out.println("exit: 0");
        System.out.println("body:");
        System.out.print(last);
    }
}
