//! The built-in page (no `--root`): the request the browser just sent,
//! shown back to it, part by part, with a sentence on each part.
//!
//! Written for a projector: large type, dark text on white, no scripts, no
//! external resources (the page must work with no network but the one to
//! this server). Everything the client sent is HTML-escaped before it goes
//! into the page, so a header like `<script>` is shown, never run.

use std::io::Write;
use std::net::SocketAddr;

use super::response::{push_escaped, push_number};
use super::Head;

/// The page for one request. `raw` is the request exactly as received
/// (head and body).
pub fn page(head: &Head<'_>, raw: &[u8], peer: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 * 1024 + 4 * raw.len());
    out.extend_from_slice(PAGE_START.as_bytes());

    out.extend_from_slice(b"<h2>Who asked</h2>\n<p>Client address <b>");
    // An IP address is digits, dots, colons and hex: nothing to escape.
    // (Writing into a Vec cannot fail.)
    let _ = write!(out, "{}", peer.ip());
    out.extend_from_slice(b"</b>, port <b>");
    push_number(&mut out, u64::from(peer.port()));
    out.extend_from_slice(
        b"</b>: the other end of this TCP connection, as accept() reported it. \
          The port is the one your machine picked for this connection.</p>\n",
    );

    out.extend_from_slice(b"<h2>The request line</h2>\n<p class=\"line\"><code>");
    push_escaped(&mut out, head.method.as_bytes());
    out.push(b' ');
    push_escaped(&mut out, head.target.as_bytes());
    out.extend_from_slice(if head.version == 1 {
        b" HTTP/1.1"
    } else {
        b" HTTP/1.0"
    });
    out.extend_from_slice(b"</code></p>\n<dl>\n<dt>Method <code>");
    push_escaped(&mut out, head.method.as_bytes());
    out.extend_from_slice(
        b"</code></dt><dd>What the client wants done: GET asks for a resource, HEAD for only its headers.</dd>\n<dt>Target <code>",
    );
    push_escaped(&mut out, head.target.as_bytes());
    out.extend_from_slice(
        b"</code></dt><dd>Which resource: a path, then optionally ? and a query string.</dd>\n<dt>Version <code>",
    );
    out.extend_from_slice(if head.version == 1 {
        b"HTTP/1.1"
    } else {
        b"HTTP/1.0"
    });
    out.extend_from_slice(
        b"</code></dt><dd>The protocol version, which decides for instance whether the connection stays open by default.</dd>\n</dl>\n",
    );

    out.extend_from_slice(b"<h2>The headers (");
    push_number(&mut out, head.headers.len() as u64);
    out.extend_from_slice(
        b")</h2>\n<p>One per line, a name, a colon and a value. Names ignore case; the order rarely matters.</p>\n<table>\n<tr><th>Name</th><th>Value</th><th>What it says</th></tr>\n",
    );
    for (name, value) in &head.headers {
        out.extend_from_slice(b"<tr><td><code>");
        push_escaped(&mut out, name.as_bytes());
        out.extend_from_slice(b"</code></td><td><code>");
        push_escaped(&mut out, value);
        out.extend_from_slice(b"</code></td><td>");
        out.extend_from_slice(explain(name).as_bytes());
        out.extend_from_slice(b"</td></tr>\n");
    }
    out.extend_from_slice(b"</table>\n");

    out.extend_from_slice(
        b"<h2>The blank line</h2>\n<p>An empty line (just CR LF) ends the head. \
          The server parsed the head from the first byte up to and including it: ",
    );
    push_number(&mut out, head.head_len as u64);
    out.extend_from_slice(b" bytes.</p>\n<h2>The body</h2>\n<p>");
    if head.body_len == 0 {
        out.extend_from_slice(
            b"None: no Content-Length header announced one (a GET rarely has a body).",
        );
    } else {
        out.extend_from_slice(b"The ");
        push_number(&mut out, head.body_len as u64);
        out.extend_from_slice(
            b" bytes after the blank line, as many as the Content-Length header announced.",
        );
    }
    out.extend_from_slice(b"</p>\n");

    out.extend_from_slice(b"<h2>The raw bytes (");
    push_number(&mut out, raw.len() as u64);
    out.extend_from_slice(
        b" bytes)</h2>\n<p>Exactly what arrived on the socket. Invisible bytes are shown as \
          <span class=\"ctl\">\\r</span> (carriage return, 13) and \
          <span class=\"ctl\">\\n</span> (line feed, 10); other bytes outside printable ASCII as \
          <span class=\"ctl\">\\xNN</span> in hexadecimal.</p>\n<pre>",
    );
    push_raw(&mut out, raw);
    out.extend_from_slice(b"</pre>\n");

    out.extend_from_slice(PAGE_END.as_bytes());
    out
}

/// The raw request, escaped, with every control byte made visible.
fn push_raw(out: &mut Vec<u8>, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in raw {
        match b {
            b'\r' => out.extend_from_slice(b"<span class=\"ctl\">\\r</span>"),
            // Show the \n, then really break the line, as the text does.
            b'\n' => out.extend_from_slice(b"<span class=\"ctl\">\\n</span>\n"),
            b' '..=b'~' => push_escaped(out, &[b]),
            _ => {
                out.extend_from_slice(b"<span class=\"ctl\">\\x");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
                out.extend_from_slice(b"</span>");
            }
        }
    }
}

/// One sentence on a header, for the ones a browser or curl commonly sends.
fn explain(name: &str) -> &'static str {
    const NOTES: &[(&str, &str)] = &[
        ("host", "The host name and port the client used; one server can host many sites, and this says which one is meant (required in HTTP/1.1)."),
        ("user-agent", "The client program and version; servers use it for statistics and, less wisely, to adapt pages."),
        ("accept", "The media types the client can use, in order of preference (q= gives a weight)."),
        ("accept-language", "The human languages the reader prefers."),
        ("accept-encoding", "The compressions the client can undo, such as gzip or br; this server sends files uncompressed."),
        ("connection", "Whether to keep the TCP connection open after the response (keep-alive) or close it (close)."),
        ("keep-alive", "Hints about how long an idle kept-alive connection may stay open."),
        ("upgrade-insecure-requests", "The browser would rather be sent to an https:// version of the page."),
        ("cache-control", "Rules for caches; max-age=0 or no-cache asks for a fresh answer."),
        ("pragma", "The HTTP/1.0 way to say no-cache."),
        ("cookie", "Values this site stored in the browser earlier, sent back with every request."),
        ("referer", "The page that linked here (the misspelling is in the standard)."),
        ("origin", "The site a script request comes from, checked for cross-origin rules."),
        ("dnt", "Do Not Track: a privacy wish, not enforced by anything."),
        ("priority", "How urgent this resource is compared with others the browser wants."),
        ("sec-fetch-site", "Whether the request comes from this site, another site, or the user typing the address."),
        ("sec-fetch-mode", "How the request was made: navigate means the user went to a page."),
        ("sec-fetch-user", "?1 when a user action (a click or typing) started the request."),
        ("sec-fetch-dest", "What the response will be used for: a document, an image, a script..."),
        ("sec-ch-ua", "Client hints: the browser's brand and version, in a structured form."),
        ("sec-ch-ua-mobile", "Client hints: ?1 on a phone or tablet."),
        ("sec-ch-ua-platform", "Client hints: the operating system."),
        ("if-modified-since", "Send the body only if the resource changed after this date; otherwise 304."),
        ("if-none-match", "Send the body only if the resource's ETag differs; otherwise 304."),
        ("range", "Only these bytes of the resource, to resume a download or seek in a video."),
        ("authorization", "Credentials for this site; never send them over plain HTTP on a real network."),
        ("content-length", "The size of the body in bytes: how the server knows where the body, and the request, end."),
        ("content-type", "What kind of data the body is."),
        ("transfer-encoding", "The body comes in chunks whose total size is not known in advance."),
        ("expect", "100-continue asks the server to approve the headers before the body is sent."),
    ];
    NOTES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map_or(
            "A header this page has no note on; the server ignores it.",
            |&(_, note)| note,
        )
}

const PAGE_START: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>Your HTTP request</title>
<style>
body { font: 1.6rem/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #111; background: #fff; }
h1 { font-size: 2.4rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.9rem; margin: 2rem 0 0.5rem; border-bottom: 3px solid #222; }
code, pre { font-family: ui-monospace, \"DejaVu Sans Mono\", monospace; }
code { background: #eef; padding: 0 0.2em; overflow-wrap: anywhere; }
pre { font-size: 1.4rem; background: #f4f4f4; border: 2px solid #222; padding: 1rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.line { font-size: 2rem; }
.ctl { color: #fff; background: #b00020; padding: 0 0.1em; }
dt { font-weight: bold; margin-top: 0.5rem; }
dd { margin-left: 1.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 2px solid #222; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #222; color: #fff; }
td:first-child { white-space: nowrap; }
td:nth-child(3) { font-size: 1.4rem; }
</style>
</head>
<body>
<h1>This is the HTTP request you just sent</h1>
<p>Your browser opened a TCP connection to this server and wrote the text below into it. \
The server read those bytes, parsed them with httparse, and wrote this page back as the response body.</p>
";

const PAGE_END: &str = "<h2>The response</h2>
<p>This page came back as <code>HTTP/1.1 200 OK</code>, then headers such as \
<code>Content-Type</code> and <code>Content-Length</code>, a blank line, and this HTML. \
Your browser's developer tools (Network tab) show those headers.</p>
</body>
</html>
";

/// The answer to `/favicon.ico`, which every browser asks for on its own.
///
/// A real icon rather than a 204 or 404: the tab looks finished on the
/// projector, and the browser's console stays free of a red 404 that a
/// student would otherwise ask about. It is a 16x16 ICO built at compile
/// time from the picture below (two arrows: a request goes out, a
/// response comes back), so there is no binary file to trust.
pub const FAVICON: [u8; ICO_LEN] = favicon();

const PICTURE: [&[u8; 16]; 16] = [
    b"################",
    b"################",
    b"#########.######",
    b"#########..#####",
    b"##............##",
    b"#########..#####",
    b"#########.######",
    b"################",
    b"################",
    b"######.#########",
    b"#####..#########",
    b"##............##",
    b"#####..#########",
    b"######.#########",
    b"################",
    b"################",
];

/// ICONDIR (6) + one ICONDIRENTRY (16) + BITMAPINFOHEADER (40)
/// + 16x16 BGRA pixels (1024) + the 1-bit AND mask, 4 bytes a row (64).
const ICO_LEN: usize = 6 + 16 + 40 + 16 * 16 * 4 + 16 * 4;

const fn favicon() -> [u8; ICO_LEN] {
    let mut ico = [0u8; ICO_LEN];
    // ICONDIR: reserved 0, type 1 (icon), 1 image.
    ico[2] = 1;
    ico[4] = 1;
    // ICONDIRENTRY: 16x16, no palette, 1 plane, 32 bits a pixel, the
    // image's size (everything after the 22 bytes of directory), offset 22.
    ico[6] = 16;
    ico[7] = 16;
    ico[10] = 1;
    ico[12] = 32;
    let image_len = (ICO_LEN - 22) as u32;
    let len = image_len.to_le_bytes();
    ico[14] = len[0];
    ico[15] = len[1];
    ico[18] = 22;
    // BITMAPINFOHEADER: its size 40, width 16, height 32 (an ICO counts the
    // AND mask as a second image below the pixels), 1 plane, 32 bits.
    ico[22] = 40;
    ico[26] = 16;
    ico[30] = 32;
    ico[34] = 1;
    ico[36] = 32;
    // Pixels, bottom row first, each blue, green, red, alpha.
    let mut y = 0;
    while y < 16 {
        let row = PICTURE[15 - y];
        let mut x = 0;
        while x < 16 {
            let at = 62 + (y * 16 + x) * 4;
            let (blue, green, red) = if row[x] == b'#' {
                (0x8a, 0x3a, 0x1e) // dark blue
            } else {
                (0xff, 0xff, 0xff) // white
            };
            ico[at] = blue;
            ico[at + 1] = green;
            ico[at + 2] = red;
            ico[at + 3] = 0xff; // opaque
            x += 1;
        }
        y += 1;
    }
    // The AND mask stays all zeros: every pixel is drawn.
    ico
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(headers: Vec<(&'a str, &'a [u8])>) -> Head<'a> {
        Head {
            method: "GET",
            target: "/hello?x=<1>",
            version: 1,
            headers,
            head_len: 10,
            body_len: 0,
        }
    }

    #[test]
    fn page_shows_peer_request_line_headers_and_escaped_raw_bytes() {
        let agent: &[u8] = b"Mozilla/5.0 (X11; Linux x86_64) <b>&\"quoted\"";
        let raw = b"GET /hello?x=<1> HTTP/1.1\r\nUser-Agent: x\r\n\x01\xff\r\n";
        let peer: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        let page = page(
            &head(vec![("User-Agent", agent), ("X-Odd", b"v")]),
            raw,
            peer,
        );
        let page = String::from_utf8(page).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.ends_with("</html>\n"));
        assert!(page.contains("<b>127.0.0.1</b>, port <b>54321</b>"));
        assert!(page.contains("GET /hello?x=&lt;1&gt; HTTP/1.1"));
        assert!(page.contains("Mozilla/5.0 (X11; Linux x86_64) &lt;b&gt;&amp;&quot;quoted&quot;"));
        assert!(page.contains("The client program and version"));
        assert!(page.contains("has no note on"));
        // CR LF visible, control and non-ASCII bytes as hex.
        assert!(
            page.contains("HTTP/1.1<span class=\"ctl\">\\r</span><span class=\"ctl\">\\n</span>\n")
        );
        assert!(page.contains("<span class=\"ctl\">\\x01</span><span class=\"ctl\">\\xff</span>"));
        assert!(!page.contains("<b>&"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn an_ipv6_peer_is_shown_without_brackets() {
        let peer: SocketAddr = "[::1]:5000".parse().unwrap();
        let page = String::from_utf8(page(&head(Vec::new()), b"", peer)).unwrap();
        assert!(page.contains("<b>::1</b>, port <b>5000</b>"));
        assert!(page.contains("The headers (0)"));
    }

    #[test]
    fn favicon_is_a_16x16_32_bit_ico() {
        assert_eq!(&FAVICON[..6], &[0, 0, 1, 0, 1, 0]);
        assert_eq!((FAVICON[6], FAVICON[7]), (16, 16));
        let size = u32::from_le_bytes([FAVICON[14], FAVICON[15], FAVICON[16], FAVICON[17]]);
        assert_eq!(size as usize + 22, FAVICON.len());
        assert_eq!(FAVICON.len(), 1150);
        // Top-left pixel (last row in the file) is dark blue and opaque.
        let top_left = 62 + 15 * 16 * 4;
        assert_eq!(&FAVICON[top_left..top_left + 4], &[0x8a, 0x3a, 0x1e, 0xff]);
    }
}
