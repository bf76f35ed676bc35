# Varnish in front of loomiere origins (scripts/cluster.sh fills in @ORIGIN1_PORT@,
# @ORIGIN2_PORT@ and @PROBE_URL@; on a real site, put your origins' addresses there).
#
# - Both origins are backends of one round-robin director; each is probed with a HEAD of a
#   small media file, so an origin that stops answering leaves the rotation within about two
#   seconds and a request that found it dead is retried once on the other.
# - The cache key is the whole URL, query included: `?start=30` and `?start=60` are different
#   answers, and a signed URL's `expires` and `sig` are part of the key, so a cached answer is
#   only ever given to a request that carries the same valid signature (an expired link still
#   reaches an origin, which refuses it, once the cached copy's max-age is over: keep
#   cache_max_age_secs below your links' lifetime).
# - Origins say how long an answer may be kept (`Cache-Control: public, max-age=N`); Varnish
#   honours it. Range requests are served by Varnish from the whole cached answer.
vcl 4.1;

import directors;

probe media_head {
    .request =
        "HEAD @PROBE_URL@ HTTP/1.1"
        "Host: origin"
        "Connection: close";
    .interval = 1s;
    .timeout = 2s;
    .window = 3;
    .threshold = 2;
}

backend origin1 {
    .host = "127.0.0.1";
    .port = "@ORIGIN1_PORT@";
    .probe = media_head;
    .connect_timeout = 1s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 30s;
}

backend origin2 {
    .host = "127.0.0.1";
    .port = "@ORIGIN2_PORT@";
    .probe = media_head;
    .connect_timeout = 1s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 30s;
}

sub vcl_init {
    new origins = directors.round_robin();
    origins.add_backend(origin1);
    origins.add_backend(origin2);
}

sub vcl_recv {
    set req.backend_hint = origins.backend();
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Media answers do not depend on cookies.
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_fetch {
    # A retry goes to the next healthy origin of the rotation.
    set bereq.backend = origins.backend();
}

sub vcl_backend_response {
    # Stream large answers to the client while they are fetched.
    set beresp.do_stream = true;
    if (beresp.status >= 500 && bereq.retries == 0 && bereq.method == "GET") {
        return (retry);
    }
    # Errors are kept briefly, so a storm of requests for a missing file does not reach the
    # origins each time, yet a fixed file is seen soon.
    if (beresp.status >= 400) {
        set beresp.ttl = 5s;
        set beresp.uncacheable = false;
    }
}

sub vcl_backend_error {
    # The origin could not be reached (killed, connection refused): once more on another.
    if (bereq.retries == 0 && bereq.method == "GET") {
        return (retry);
    }
}

sub vcl_deliver {
    # Whether this answer came from the cache (tests and bench/scaling.sh count hits).
    if (obj.hits > 0) {
        set resp.http.X-Cache = "hit";
    } else {
        set resp.http.X-Cache = "miss";
    }
}
