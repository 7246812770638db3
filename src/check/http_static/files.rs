//! The directory `{root}` the student's server serves, and the secret
//! beside it that it must never serve.
//!
//! Each file tests one thing: text with characters that take more than one
//! byte in UTF-8 (a Content-Length that counts characters is wrong for
//! it), a binary file holding every byte value (decoding it as text loses
//! or changes bytes), a file in a subdirectory, and a name with a space
//! (requested as `%20`). The secret sits in the directory above the root,
//! with a random token in it, so a response that carries the token can
//! only have come from a path that left the root.

use std::io;
use std::path::{Path, PathBuf};

/// One file the checker puts under the root.
pub struct Served {
    /// How the probes ask for it (percent-encoded where needed).
    pub url: &'static str,
    /// Its path under the root.
    pub path: &'static str,
    /// The media type its extension calls for.
    pub media_type: &'static str,
    contents: Contents,
}

enum Contents {
    Text(&'static str),
    /// A PNG signature followed by every byte value, up and then down.
    EveryByte,
}

pub const INDEX: Served = Served {
    url: "/index.html",
    path: "index.html",
    media_type: "text/html",
    contents: Contents::Text(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>netlab check</title>\n\
         <link rel=\"stylesheet\" href=\"style.css\"></head>\n\
         <body><h1>It works \u{2014} served by your own server</h1>\n\
         <p>Caf\u{e9} cr\u{e8}me: this line has letters that take two bytes in UTF-8.</p></body>\n</html>\n",
    ),
};

pub const NOTES: Served = Served {
    url: "/notes.txt",
    path: "notes.txt",
    media_type: "text/plain",
    contents: Contents::Text(
        "Notes for the file server exercise.\n\
         Temperature 21 \u{b0}C, price 3 \u{20ac}, na\u{ef}ve, \u{4f60}\u{597d}.\n\
         Content-Length counts bytes: this file has more bytes than characters.\n",
    ),
};

pub const STYLE: Served = Served {
    url: "/style.css",
    path: "style.css",
    media_type: "text/css",
    contents: Contents::Text(
        "body { font-family: sans-serif; margin: 2em; }\nh1 { color: #225; }\n",
    ),
};

pub const LOGO: Served = Served {
    url: "/logo.png",
    path: "logo.png",
    media_type: "image/png",
    contents: Contents::EveryByte,
};

pub const SUB_PAGE: Served = Served {
    url: "/sub/page.html",
    path: "sub/page.html",
    media_type: "text/html",
    contents: Contents::Text(
        "<!DOCTYPE html>\n<html><head><title>sub</title></head>\n<body><p>A page in a subdirectory.</p></body></html>\n",
    ),
};

pub const SPACED: Served = Served {
    url: "/two%20words.txt",
    path: "two words.txt",
    media_type: "text/plain",
    contents: Contents::Text("A file whose name has a space; the request spells it %20.\n"),
};

pub const ALL: [&Served; 6] = [&INDEX, &NOTES, &STYLE, &LOGO, &SUB_PAGE, &SPACED];

/// The file the traversal probe tries to reach, beside the root.
pub const SECRET_NAME: &str = "secret.txt";

impl Served {
    pub fn bytes(&self) -> Vec<u8> {
        match self.contents {
            Contents::Text(text) => text.as_bytes().to_vec(),
            Contents::EveryByte => {
                let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
                bytes.extend(0..=255u8);
                bytes.extend((0..=255u8).rev());
                bytes
            }
        }
    }
}

impl Served {
    /// How many characters a text file has (fewer than its bytes when some
    /// take more than one byte in UTF-8); None for the binary file.
    pub fn characters(&self) -> Option<usize> {
        match self.contents {
            Contents::Text(text) => Some(text.chars().count()),
            Contents::EveryByte => None,
        }
    }
}

/// Fill `root` (created empty by the framework) and write the secret in
/// the directory above it.
pub fn prepare(root: &Path) -> io::Result<()> {
    std::fs::create_dir(root.join("sub"))?;
    for file in ALL {
        std::fs::write(root.join(file.path), file.bytes())?;
    }
    let token = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let secret = format!(
        "NETLAB-SECRET-{token:x}-{}\nThis file lies outside the served directory. A server that sends it lets any client read any file.\n",
        std::process::id()
    );
    std::fs::write(secret_path(root)?, secret)
}

/// Where the secret is: in the directory that holds the root.
pub fn secret_path(root: &Path) -> io::Result<PathBuf> {
    root.parent()
        .map(|parent| parent.join(SECRET_NAME))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the root has no parent directory"))
}

/// The secret's first line: the token a leaked response would contain.
pub fn secret_token(root: &Path) -> io::Result<Vec<u8>> {
    let secret = std::fs::read(secret_path(root)?)?;
    Ok(secret.split(|&b| b == b'\n').next().unwrap_or(&[]).to_vec())
}
