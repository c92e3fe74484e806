//! The loopback S3 server the offsite tests stand on: it checks signatures, keeps uploads
//! create-only, takes multipart uploads, survives a restart on its disk; and the standard
//! `age` and `zstd` tools the tests read our objects with.

use object_store::path::Path as ObjectPath;
use object_store::{
    Error as StoreError, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use sha2::{Digest as _, Sha256};

use crate::support::s3::{S3Server, age_decrypt, age_keygen, zstd_decompress};
use crate::support::stderr;

const MIB: usize = 1024 * 1024;

fn create_only() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    }
}

/// Bytes that no compressor shrinks and no two tests share by accident.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn the_server_refuses_a_wrong_secret_key_and_stores_nothing() {
    let server = S3Server::start();
    let intruder = server.client_with(server.access_key(), "not-the-secret-key");
    let refused = intruder
        .put(&ObjectPath::from("x"), PutPayload::from_static(b"hello"))
        .await
        .expect_err("a request signed with the wrong secret is refused");
    let message = refused.to_string();
    assert!(
        message.contains("403") || message.contains("SignatureDoesNotMatch"),
        "{message}"
    );
    assert_eq!(server.objects(), Vec::<(String, u64)>::new());

    let stranger = server.client_with("NOSUCHACCESSKEY", server.secret_key());
    assert!(
        stranger.get(&ObjectPath::from("x")).await.is_err(),
        "an unknown access key is refused"
    );
}

#[tokio::test]
async fn the_server_stores_lists_and_deletes_create_only_uploads() {
    let server = S3Server::start();
    let store = server.client();
    let key = ObjectPath::from("backups/a.db");
    store
        .put_opts(&key, PutPayload::from_static(b"first"), create_only())
        .await
        .expect("the first create-only upload");
    let again = store
        .put_opts(&key, PutPayload::from_static(b"second"), create_only())
        .await
        .expect_err("a second create-only upload of the same key");
    assert!(
        matches!(again, StoreError::AlreadyExists { .. }),
        "{again:?}"
    );
    assert_eq!(server.objects(), vec![("backups/a.db".to_owned(), 5)]);
    let stored = store
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("read");
    assert_eq!(&stored[..], b"first", "the first upload is kept");

    let listed: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, key);
    assert_eq!(listed[0].size, 5);

    store.delete(&key).await.expect("delete");
    assert_eq!(server.objects(), Vec::<(String, u64)>::new());
}

#[tokio::test]
async fn the_server_assembles_a_multipart_upload() {
    let server = S3Server::start();
    let store = server.client();
    let key = ObjectPath::from("large.bin");
    let data = pseudo_random(12 * MIB + 17, 1);
    let upload = store
        .put_multipart(&key)
        .await
        .expect("begin a multipart upload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * MIB);
    for chunk in data.chunks(MIB) {
        writer.write(chunk);
    }
    writer
        .finish()
        .await
        .expect("complete the multipart upload");

    assert_eq!(
        server.objects(),
        vec![("large.bin".to_owned(), data.len() as u64)]
    );
    assert_eq!(server.uploads_in_progress(), Vec::<String>::new());
    let stored = std::fs::read(server.object_path("large.bin")).expect("read the object");
    assert_eq!(Sha256::digest(&stored), Sha256::digest(&data));
}

#[tokio::test]
async fn the_server_keeps_its_objects_across_a_kill_and_restart_on_the_same_port() {
    let mut server = S3Server::start();
    let endpoint = server.endpoint();
    let key = ObjectPath::from("kept");
    let store = server.client();
    store
        .put(&key, PutPayload::from_static(b"survives"))
        .await
        .expect("put");

    server.kill();
    assert!(
        store.get(&key).await.is_err(),
        "a killed server answers nothing"
    );

    server.restart();
    assert_eq!(server.endpoint(), endpoint);
    let stored = store.get(&key).await.expect("get after restart");
    assert_eq!(&stored.bytes().await.expect("read")[..], b"survives");
}

#[tokio::test]
async fn an_unfinished_multipart_upload_shows_on_the_server_disk_and_nowhere_else() {
    let server = S3Server::start();
    let store = server.client();
    let mut upload = store
        .put_multipart(&ObjectPath::from("unfinished"))
        .await
        .expect("begin a multipart upload");
    upload
        .put_part(PutPayload::from(pseudo_random(5 * MIB, 2)))
        .await
        .expect("upload one part");

    let in_progress = server.uploads_in_progress();
    assert!(
        in_progress
            .iter()
            .any(|n| n.starts_with(".upload_id-") && n.ends_with(".part-1")),
        "{in_progress:?}"
    );
    assert_eq!(
        server.objects(),
        Vec::<(String, u64)>::new(),
        "no visible object"
    );

    upload.abort().await.expect("abort");
    assert_eq!(server.uploads_in_progress(), Vec::<String>::new());
}

#[test]
fn the_standard_tools_read_age_and_zstd_files() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (identity, recipient) = age_keygen(scratch.path());
    let plain = scratch.path().join("plain");
    std::fs::write(&plain, pseudo_random(100_000, 3)).expect("write");

    let compressed = scratch.path().join("plain.zst");
    let encrypted = scratch.path().join("plain.zst.age");
    let zstd = std::process::Command::new("zstd")
        .args(["-q", "-f"])
        .arg(&plain)
        .arg("-o")
        .arg(&compressed)
        .output()
        .expect("run zstd");
    assert!(zstd.status.success(), "{}", stderr(&zstd));
    let age = std::process::Command::new("age")
        .args(["-r", &recipient, "-o"])
        .arg(&encrypted)
        .arg(&compressed)
        .output()
        .expect("run age");
    assert!(age.status.success(), "{}", stderr(&age));

    let decrypted = scratch.path().join("decrypted.zst");
    let restored = scratch.path().join("restored");
    let output = age_decrypt(&identity, &encrypted, &decrypted);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = zstd_decompress(&decrypted, &restored);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(&restored).expect("read"),
        std::fs::read(&plain).expect("read")
    );

    let (other_identity, _) = age_keygen(scratch.path());
    let refused = age_decrypt(&other_identity, &encrypted, &scratch.path().join("no"));
    assert!(!refused.status.success(), "another identity cannot decrypt");
}
