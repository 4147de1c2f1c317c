//! Puts the trunk-built web client (`dist/`) inside the server binary when the
//! `embed-client` feature is on, so a release is one file to copy.
//!
//! Everything a request would otherwise redo is done here, once: each file is read,
//! compressed with brotli (quality 11) and gzip (level 9) when that makes it smaller,
//! hashed for its `ETag`, given its `Content-Type`, and sorted by path. The result is
//! `$OUT_DIR/embedded_client.rs`, a slice of `Asset`s (`src/http/embedded.rs`) whose
//! bytes are `include_bytes!` of copies in `$OUT_DIR`, so what is embedded is exactly
//! what was hashed even if `dist/` changes during the build.
//!
//! Without the feature the slice is empty and nothing is read: debug builds, `cargo
//! test` and clippy need no built client and pay for no compression. With it, a
//! missing `dist/index.html` fails the build with what to run, rather than producing
//! a release that cannot show a page.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    #[cfg(feature = "embed-client")]
    let table = embed::table(&out_dir);
    #[cfg(not(feature = "embed-client"))]
    let table = "&[]";
    if let Err(e) = fs::write(out_dir.join("embedded_client.rs"), table) {
        panic!("cannot write {}: {e}", out_dir.display());
    }
}

#[cfg(feature = "embed-client")]
mod embed {
    use std::{
        env,
        fmt::Write as _,
        fs,
        io::Write as _,
        path::{Path, PathBuf},
    };

    use sha2::{Digest, Sha256};

    /// Extensions worth compressing: text and WebAssembly. Images and fonts are
    /// compressed already.
    const COMPRESSIBLE: &[&str] = &[
        "html", "js", "mjs", "css", "wasm", "svg", "json", "map", "txt", "xml", "ico",
    ];

    /// A compressed copy is kept only when it saves at least this share of the bytes:
    /// below it, the decompression costs the browser more than the transfer saves.
    const MIN_SAVING: f64 = 0.05;

    /// The Rust source of the asset table for the client in `dist/`.
    pub fn table(out_dir: &Path) -> String {
        let dist = client_dir();
        println!("cargo:rerun-if-env-changed=CONFAB_CLIENT_DIR");
        // A directory: cargo reruns this script when anything inside it changes.
        println!("cargo:rerun-if-changed={}", dist.display());
        if !dist.join("index.html").is_file() {
            panic!(
                "the embed-client feature needs a built web client, and {} has no index.html: \
                 run `trunk build --release --dist dist` first (scripts/release.sh does), or \
                 build without the feature",
                dist.display()
            );
        }
        let copies = out_dir.join("client");
        // A fresh copy each time: files of an older client must not linger.
        let _ = fs::remove_dir_all(&copies);
        let mut files = Vec::new();
        collect(&dist, &dist, &mut files);
        // Sorted as the server searches them: by the `/`-separated path as a string.
        let mut files: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|relative| {
                let path = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                (path, relative)
            })
            .collect();
        files.sort();
        let mut table = String::from("&[\n");
        for (index, (path, relative)) in files.iter().enumerate() {
            let identity = read(&dist.join(relative));
            let copy = |suffix: &str, bytes: &[u8]| -> String {
                let path = copies.join(format!("{index}{suffix}"));
                if let Some(parent) = path.parent() {
                    ensure(fs::create_dir_all(parent), parent);
                }
                ensure(fs::write(&path, bytes), &path);
                format!("include_bytes!({:?})", path.display().to_string())
            };
            let compressible = relative
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| COMPRESSIBLE.contains(&e.to_ascii_lowercase().as_str()));
            let worth = |compressed: &Vec<u8>| {
                (compressed.len() as f64) <= identity.len() as f64 * (1.0 - MIN_SAVING)
            };
            let (brotli, gzip) = if compressible {
                (
                    Some(brotli(&identity)).filter(worth),
                    Some(gzip(&identity)).filter(worth),
                )
            } else {
                (None, None)
            };
            let content_type = mime_guess::from_path(relative)
                .first_or_octet_stream()
                .to_string();
            let content_type = match content_type.as_str() {
                t @ ("text/html" | "text/css" | "text/javascript" | "application/javascript") => {
                    format!("{t}; charset=utf-8")
                }
                _ => content_type,
            };
            let digest = Sha256::digest(&identity);
            // 144 bits of SHA-256: a strong validator for the bytes.
            let tag = data_encoding::BASE64URL_NOPAD.encode(&digest[..18]);
            let optional = |suffix: &str, bytes: Option<Vec<u8>>| match bytes {
                Some(bytes) => format!("Some({})", copy(suffix, &bytes)),
                None => "None".to_owned(),
            };
            let _ = writeln!(
                table,
                "    Asset {{ path: {path:?}, content_type: {content_type:?}, immutable: {immutable}, \
                 tag: {tag:?}, identity: {identity}, brotli: {brotli}, gzip: {gzip} }},",
                immutable = is_hashed(path),
                identity = copy("", &identity),
                brotli = optional(".br", brotli),
                gzip = optional(".gz", gzip),
            );
        }
        table.push(']');
        table
    }

    /// `dist/` of the workspace, or `$CONFAB_CLIENT_DIR`.
    fn client_dir() -> PathBuf {
        if let Some(dir) = env::var_os("CONFAB_CLIENT_DIR") {
            return PathBuf::from(dir);
        }
        let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
        manifest.join("..").join("dist")
    }

    /// Every file under `dir`, relative to `root`.
    fn collect(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => panic!("cannot list {}: {e}", dir.display()),
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => panic!("cannot list {}: {e}", dir.display()),
            };
            if path.is_dir() {
                collect(root, &path, files);
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.to_owned());
            }
        }
    }

    /// Whether trunk put a content hash in the name (`app-0123456789abcdef.js`, or a
    /// folder such as `snippets/web-sys-0123456789abcdef/`): such a name never gets
    /// other bytes, so browsers may keep it for good.
    fn is_hashed(path: &str) -> bool {
        path.split(['-', '_', '.', '/'])
            .any(|part| part.len() >= 16 && part.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    fn read(path: &Path) -> Vec<u8> {
        match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }

    fn ensure<T>(result: std::io::Result<T>, path: &Path) -> T {
        match result {
            Ok(value) => value,
            Err(e) => panic!("cannot write {}: {e}", path.display()),
        }
    }

    fn brotli(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            // Quality 11 (the best) and a 4 MiB window: slow, but paid once per build.
            let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
            if let Err(e) = writer.write_all(bytes) {
                panic!("brotli: {e}");
            }
        }
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        match encoder.write_all(bytes).and_then(|()| encoder.finish()) {
            Ok(out) => out,
            Err(e) => panic!("gzip: {e}"),
        }
    }
}
