//! A tiny file server on 127.0.0.1, for the tests that download (a dataset archive, a Hugging
//! Face checkpoint) without the network.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use sha2::{Digest, Sha256};

/// Serves `files` (URL path such as `/archive.zip`, body) until the test process ends; returns
/// the port. Every response carries `headers` and an `etag` (the body's SHA-256, as the Hub's);
/// a `Range: bytes=start-[end]` request gets that part (206 Partial Content, with
/// `Content-Range`, as hf-hub needs); an unknown path gets 404.
pub fn serve(files: Vec<(String, Vec<u8>)>, headers: &[(&str, &str)]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_head(&mut stream);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let response = match files.iter().find(|(served, _)| served == path) {
                Some((_, body)) => respond(body, range(&request), &headers),
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    port
}

/// The request line and headers.
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&request).into_owned()
}

/// The first and (if given) last byte of a `Range: bytes=first-last` header.
fn range(request: &str) -> Option<(usize, Option<usize>)> {
    let spec = request.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=").map(String::from))?;
    let (first, last) = spec.trim().split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()))
}

fn respond(body: &[u8], range: Option<(usize, Option<usize>)>, headers: &str) -> Vec<u8> {
    let etag = format!("{:x}", Sha256::digest(body));
    let (status, part, content_range) = match range {
        None => ("200 OK", body, String::new()),
        Some((first, last)) => {
            let start = first.min(body.len());
            let end = last.map_or(body.len(), |last| (last + 1).min(body.len())).max(start);
            let content_range = format!("Content-Range: bytes {start}-{}/{}\r\n", end.saturating_sub(1), body.len());
            ("206 Partial Content", &body[start..end], content_range)
        }
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{content_range}etag: \"{etag}\"\r\n{headers}Connection: close\r\n\r\n",
        part.len()
    )
    .into_bytes();
    response.extend_from_slice(part);
    response
}
