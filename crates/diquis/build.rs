//! Installs the browser libraries the UI serves (the official `@microsoft/signalr` client,
//! toastr and jQuery) from npm with `npm ci` (exact versions from web/package-lock.json) when
//! they are missing, and copies them to OUT_DIR to be embedded. Nothing is fetched at run time
//! and no page uses a CDN.

use std::path::{Path, PathBuf};
use std::process::Command;

const FILES: &[(&str, &str)] = &[
    ("node_modules/@microsoft/signalr/dist/browser/signalr.min.js", "signalr.min.js"),
    ("node_modules/toastr/build/toastr.min.js", "toastr.min.js"),
    ("node_modules/toastr/build/toastr.min.css", "toastr.min.css"),
    ("node_modules/jquery/dist/jquery.min.js", "jquery.min.js"),
];

fn main() {
    let web = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed=web/package.json");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    for (src, _) in FILES {
        println!("cargo:rerun-if-changed=web/{src}");
    }
    if FILES.iter().any(|(src, _)| !web.join(src).is_file()) {
        npm_ci(&web);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for (src, dst) in FILES {
        let from = web.join(src);
        if let Err(e) = std::fs::copy(&from, out.join(dst)) {
            panic!("cannot copy {} (run `npm ci` in {}): {e}", from.display(), web.display());
        }
    }
}

fn npm_ci(web: &Path) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let status =
        Command::new(npm).args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(web).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`npm ci` in {} failed with {s}; the UI's browser libraries come from npm", web.display()),
        Err(e) => panic!(
            "cannot run npm ({e}): install Node.js and npm, or run `npm ci` in {} once; the UI serves the \
             official @microsoft/signalr client from npm, never from a CDN",
            web.display()
        ),
    }
}
