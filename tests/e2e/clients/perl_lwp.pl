# Perl's LWP::UserAgent driver (tests/e2e/README.md, "Driver interface"):
# TLS through IO::Socket::SSL and Net::SSLeay on the shared libssl; trust
# from PERL_LWP_SSL_CA_FILE (LWP's own variable, which kimifix extends).
use strict;
use warnings;
use LWP::UserAgent;
use HTTP::Request;
use Time::HiRes qw(time);

my $t0 = time;
sub ms { int((time - $t0) * 1000) }
sub env { my ($k, $d) = @_; my $v = $ENV{$k}; return (defined $v && $v ne "") ? $v : $d }

my $url = env("E2E_URL");
my @headers;
for my $l (split /\n/, env("E2E_HEADERS", "")) {
    next unless $l =~ /\S/;
    my ($n, $v) = split /:/, $l, 2;
    $n =~ s/^\s+|\s+$//g;
    $v = "" unless defined $v;
    $v =~ s/^\s+|\s+$//g;
    push @headers, $n, $v;
}
my $body;
if (my $f = env("E2E_BODY_FILE")) {
    open my $fh, "<:raw", $f or die "$f: $!";
    local $/;
    $body = <$fh>;
}
my $method = env("E2E_METHOD", defined $body ? "POST" : "GET");
my $repeat = env("E2E_REPEAT", 1);

my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 30, agent => undef);
my (@statuses, $first, $last);
for (1 .. $repeat) {
    my $req = HTTP::Request->new($method => $url);
    $req->header(@headers) if @headers;
    $req->content($body) if defined $body;
    $last = "";
    my $res = $ua->request($req, sub { $first //= ms(); $last .= $_[0] });
    push @statuses, $res->code;
    # the callback sees only a success's body: an error's is in the response
    $last = $res->content if !$res->is_success && $last eq "";
    # LWP answers a failure of its own (no TLS, no connection) as a 500 with
    # this header: say why on stderr
    print STDERR $res->status_line, ": ", $res->content, "\n" if $res->header("Client-Warning");
}
binmode STDOUT;
print "status: $_\n" for @statuses;
print "connections: ", scalar(() = $ua->conn_cache->get_connections), "\n";
print "first-byte-ms: $first\n" if defined $first;
print "total-ms: ", ms(), "\n";
print "body:\n", $last;
