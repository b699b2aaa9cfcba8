# Ruby's Net::HTTP driver (tests/e2e/README.md, "Driver interface"): the way
# a Ruby application (ruby-openai, anthropic-rb) talks HTTP. TLS is Ruby's
# openssl extension, a dlopen()ed module on the shared libssl; trust comes
# from OpenSSL's defaults (SSL_CERT_FILE).
require "net/http"
require "uri"

t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
ms = -> { ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000).to_i }
env = ->(k, d = nil) { v = ENV[k]; v.nil? || v.empty? ? d : v }

url = URI(env.("E2E_URL"))
headers = env.("E2E_HEADERS", "").split("\n").reject { |l| l.strip.empty? }.map do |l|
  n, v = l.split(":", 2)
  [n.strip, v.to_s.strip]
end
body = env.("E2E_BODY_FILE") ? File.binread(ENV["E2E_BODY_FILE"]) : nil
method = env.("E2E_METHOD", body ? "POST" : "GET")
chunked = env.("E2E_CHUNKED") == "1"
repeat = env.("E2E_REPEAT", "1").to_i

# A body of unknown length: an IO with no size, sent chunked.
class Chunks
  def initialize(data) @data, @off = data, 0 end
  def read(n = nil, buf = nil)
    return nil if @off >= @data.bytesize
    s = @data.byteslice(@off, [n || 4096, 4096].min)
    @off += s.bytesize
    buf ? buf.replace(s) : s
  end
end

statuses, first, last_body, conns = [], nil, "".b, 0
http = Net::HTTP.new(url.host, url.port)
http.use_ssl = url.scheme == "https"
http.open_timeout = http.read_timeout = 30
http.start do |h|
  conns += 1
  repeat.times do
    req = Net::HTTPGenericRequest.new(method, !body.nil?, true, url.request_uri)
    headers.each { |n, v| req[n] = v }
    if body && chunked
      req["Transfer-Encoding"] = "chunked"
      req.body_stream = Chunks.new(body)
    elsif body
      req.body = body
    end
    h.request(req) do |res|
      statuses << res.code.to_i
      last_body = "".b
      res.read_body do |c|
        first ||= ms.()
        last_body << c
      end
    end
  end
end

out = $stdout
out.binmode
statuses.each { |s| out.write("status: #{s}\n") }
out.write("connections: #{conns}\n")
out.write("first-byte-ms: #{first}\n") if first
out.write("total-ms: #{ms.()}\n")
out.write("body:\n")
out.write(last_body)
out.flush
