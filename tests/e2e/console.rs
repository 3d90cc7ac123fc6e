//! The admin console at `/admin/ui` in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven by Python `selenium` in `.venv-test`): a wrong token is refused,
//! the admin token logs in, a model is shown, pinning and unpinning it from the console take
//! effect, the live charts draw; a screenshot is kept under `$NFAI_TEST_ARTIFACTS` (default:
//! the target dir's `test-artifacts/`).

use crate::common::*;

const SELENIUM_VERSION: &str = "4.40.0";
const TOKEN: &str = "console-test-token";

fn artifacts_dir() -> std::path::PathBuf {
    let dir = match std::env::var_os("NFAI_TEST_ARTIFACTS") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || {
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("..")
                        .join("target")
                },
                std::path::PathBuf::from,
            );
            target.join("test-artifacts")
        }
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Installs Chromium and its driver with apt when they are missing.
fn ensure_chromium() {
    use std::process::Command;
    let present = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if !present {
        let ok = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chromium is missing and apt-get could not install it");
    }
}

#[tokio::test]
async fn the_console_logs_in_shows_models_and_pins_one() {
    ensure_chromium();
    let py = python_with(
        ".venv-test",
        "selenium",
        SELENIUM_VERSION,
        "NFAI_TEST_PYTHON",
    );
    let mut args = config_args("console", "serve = [\"all-minilm-l6-v2\"]\n");
    args.admin_token = Some(nfai_router::config::Secret::new(TOKEN.into()));
    let s = start_with(args);

    let page = client()
        .get(format!("{}/admin/ui", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );

    let shot = artifacts_dir().join("admin-console.png");
    let _ = std::fs::remove_file(&shot);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/console.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .args([&s.base, TOKEN, "all-minilm-l6-v2"])
        .arg(&shot)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "console.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot was kept");
    println!("screenshot: {}", shot.display());
    let models = client()
        .get(format!("{}/admin/models", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        models["data"][0]["pinned"], false,
        "unpinned again by the console"
    );
}
