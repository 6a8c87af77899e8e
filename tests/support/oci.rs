//! Images to push: OCI layouts written by the test itself, with random content, pushed to a
//! `docker-registry` with `skopeo copy --preserve-digests`, so every digest and byte the test
//! knows is exactly what the registry holds.
//!
//! Layers are real (uncompressed) tar archives holding one file of random bytes, and configs
//! carry matching `diff_ids`, so a Docker engine can pull and unpack them too.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::http;
use super::{run_bounded, Registry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type, as a pulling client sends it in `Accept`.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// Content and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        &self.digest["sha256:".len()..]
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).expect("system randomness");
    buf
}

/// A tar archive holding one regular file `name` with `content` (ustar, as `tar` writes it).
pub fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "tar member name too long: {name}");
    let mut header = [0u8; 512];
    let field = |header: &mut [u8; 512], at: usize, value: &[u8]| {
        header[at..at + value.len()].copy_from_slice(value);
    };
    field(&mut header, 0, name.as_bytes());
    field(&mut header, 100, b"0000644\0");
    field(&mut header, 108, b"0000000\0");
    field(&mut header, 116, b"0000000\0");
    field(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    field(&mut header, 136, b"00000000000\0");
    field(&mut header, 148, b"        ");
    header[156] = b'0';
    field(&mut header, 257, b"ustar\0");
    field(&mut header, 263, b"00");
    field(&mut header, 265, b"root");
    field(&mut header, 297, b"root");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());

    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// One single-platform image: manifest, config and layers.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    /// [`OCI_MANIFEST`] or [`DOCKER_MANIFEST`].
    pub media_type: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub os: String,
    pub architecture: String,
}

/// Which manifest format an image is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest, config and tar layers.
    Oci,
    /// Docker image manifest v2 schema 2, with its config and (uncompressed) layer types.
    Docker,
}

impl Image {
    /// A linux/amd64 OCI image with `layers` random layers.
    pub fn random(layers: usize) -> Image {
        Image::random_for("linux", "amd64", layers)
    }

    /// An OCI image for `os`/`architecture` with `layers` random layers of a few KiB each.
    pub fn random_for(os: &str, architecture: &str, layers: usize) -> Image {
        let sizes: Vec<usize> = (0..layers)
            .map(|_| 1024 + (random_bytes(1)[0] as usize) * 64)
            .collect();
        Image::build(Format::Oci, os, architecture, &sizes)
    }

    /// A linux/amd64 image in `format` whose layers hold files of `sizes` random bytes.
    pub fn random_sized(format: Format, sizes: &[usize]) -> Image {
        Image::build(format, "linux", "amd64", sizes)
    }

    fn build(format: Format, os: &str, architecture: &str, sizes: &[usize]) -> Image {
        let (media_type, config_type, layer_type) = match format {
            Format::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR),
            Format::Docker => (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar",
            ),
        };
        let layers: Vec<Blob> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                Blob::new(tar_with_file(
                    &format!("layer-{i}-{}", hex::encode(random_bytes(4))),
                    &random_bytes(*size),
                ))
            })
            .collect();
        // Uncompressed layers: the diff ID is the layer digest.
        let config = Blob::new(
            serde_json::to_vec(&serde_json::json!({
                "architecture": architecture,
                "os": os,
                "rootfs": {
                    "type": "layers",
                    "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
                },
                "config": {"Cmd": ["/nothing"]},
                "history": layers.iter().map(|_| serde_json::json!({"created_by": "trustgate test"})).collect::<Vec<_>>(),
            }))
            .expect("config JSON"),
        );
        let manifest = Blob::new(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {
                    "mediaType": config_type,
                    "digest": config.digest,
                    "size": config.size(),
                },
                "layers": layers.iter().map(|l| serde_json::json!({
                    "mediaType": layer_type,
                    "digest": l.digest,
                    "size": l.size(),
                })).collect::<Vec<_>>(),
            }))
            .expect("manifest JSON"),
        );
        Image {
            manifest,
            media_type: media_type.to_string(),
            config,
            layers,
            os: os.to_string(),
            architecture: architecture.to_string(),
        }
    }

    /// Config and layers.
    pub fn blobs(&self) -> Vec<&Blob> {
        std::iter::once(&self.config).chain(&self.layers).collect()
    }

    fn write_blobs(&self, layout: &Path) {
        for blob in self.blobs().into_iter().chain([&self.manifest]) {
            write_blob(layout, blob);
        }
    }

    /// Pushes the image to `registry` as `repo:tag`: OCI images with skopeo from an OCI
    /// layout, Docker ones with the registry API directly (an OCI layout holds OCI only).
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) {
        if self.media_type != OCI_MANIFEST {
            return self.push_http(registry, repo, tag);
        }
        let layout = tempfile::tempdir().expect("tempdir for OCI layout");
        self.write_blobs(layout.path());
        write_layout_index(layout.path(), &self.manifest, OCI_MANIFEST, tag);
        skopeo_push(layout.path(), tag, registry, repo, false);
    }
}

impl Image {
    /// Pushes with the distribution API: each blob by POST then PUT, then the manifest.
    fn push_http(&self, registry: &Registry, repo: &str, tag: &str) {
        let base = registry.url();
        for blob in self.blobs() {
            push_blob(registry, repo, blob);
        }
        let url = format!("{base}/v2/{repo}/manifests/{tag}");
        let put = http::request(
            "PUT",
            &url,
            &[("Content-Type", self.media_type.as_str())],
            &self.manifest.bytes,
        )
        .expect("put manifest");
        assert_eq!(put.status, 201, "PUT {url}: {}", put.summary());
        assert_eq!(
            put.header("docker-content-digest"),
            Some(self.manifest.digest.as_str()),
            "the registry stored other manifest bytes"
        );
    }
}

impl Registry {
    /// Pushes a new random linux/amd64 OCI image with `layers` layers as `repo:tag`.
    pub fn push_random(&self, repo: &str, tag: &str, layers: usize) -> Image {
        let image = Image::random(layers);
        image.push(self, repo, tag);
        image
    }

    /// PUTs a manifest as `repo:reference` with the distribution API, expecting 201.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.url());
        let put = http::request("PUT", &url, &[("Content-Type", media_type)], body)
            .expect("put manifest");
        assert_eq!(put.status, 201, "PUT {url}: {}", put.summary());
    }
}

/// A multi-platform image: an OCI index and its child images.
#[derive(Debug, Clone)]
pub struct Index {
    pub index: Blob,
    pub children: Vec<Image>,
}

impl Index {
    /// An index over one random single-layer image per `(os, architecture)`.
    pub fn random(platforms: &[(&str, &str)]) -> Index {
        let children: Vec<Image> = platforms
            .iter()
            .map(|(os, arch)| Image::random_for(os, arch, 1))
            .collect();
        let index = Blob::new(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": children.iter().map(|c| serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": c.manifest.digest,
                    "size": c.manifest.size(),
                    "platform": {"os": c.os, "architecture": c.architecture},
                })).collect::<Vec<_>>(),
            }))
            .expect("index JSON"),
        );
        Index { index, children }
    }

    /// Pushes the index and all its children to `registry` as `repo:tag`.
    pub fn push(&self, registry: &Registry, repo: &str, tag: &str) {
        let layout = tempfile::tempdir().expect("tempdir for OCI layout");
        for child in &self.children {
            child.write_blobs(layout.path());
        }
        write_blob(layout.path(), &self.index);
        write_layout_index(layout.path(), &self.index, OCI_INDEX, tag);
        skopeo_push(layout.path(), tag, registry, repo, true);
    }
}

fn write_blob(layout: &Path, blob: &Blob) {
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).expect("create blobs dir");
    fs::write(dir.join(blob.hex()), &blob.bytes).expect("write blob");
}

fn write_layout_index(layout: &Path, top: &Blob, media_type: &str, tag: &str) {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": top.digest,
            "size": top.size(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs::write(layout.join("index.json"), index.to_string()).expect("write index.json");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write oci-layout");
}

/// `skopeo copy` of the layout's `tag` to `registry/repo:tag`. `--preserve-digests` stops
/// skopeo from compressing layers, which would change every digest; `--all` keeps an index
/// and all its children.
fn skopeo_push(layout: &Path, tag: &str, registry: &Registry, repo: &str, all: bool) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--preserve-digests", "--dest-tls-verify=false"]);
    if all {
        cmd.arg("--all");
    }
    if let Some(credentials) = registry.credentials() {
        cmd.args(["--dest-creds", credentials]);
    }
    cmd.arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/{repo}:{tag}", registry.host_port()));
    let out = run_bounded(&mut cmd, b"", "skopeo");
    assert!(
        out.status.success(),
        "skopeo push to {repo}:{tag} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `skopeo copy` from `docker://<registry>/<image>` (plain HTTP) into a `dir:` layout at `out`;
/// returns the raw output, success or not.
pub fn skopeo_pull(registry_host: &str, image: &str, out: &Path) -> std::process::Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{registry_host}/{image}"))
        .arg(format!("dir:{}", out.display()));
    run_bounded(&mut cmd, b"", "skopeo")
}

/// Uploads one blob with the distribution API (POST an upload session, then PUT with the
/// digest), as a pushing client does.
pub fn push_blob(registry: &Registry, repo: &str, blob: &Blob) {
    let base = registry.url();
    let url = format!("{base}/v2/{repo}/blobs/uploads/");
    let started = http::request("POST", &url, &[], b"").expect("start blob upload");
    assert_eq!(started.status, 202, "POST {url}: {}", started.summary());
    let location = started.header("location").expect("upload Location");
    let location = if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{sep}digest={}", blob.digest);
    let done = http::request(
        "PUT",
        &url,
        &[("Content-Type", "application/octet-stream")],
        &blob.bytes,
    )
    .expect("finish blob upload");
    assert_eq!(done.status, 201, "PUT {url}: {}", done.summary());
}
