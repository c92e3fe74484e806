//! The loopback S3 server shared by the `s3-test-server` binary (the offsite tests and the
//! README's walk-through) and the benchmark harness (in-process): `s3s-fs` (objects are
//! files under a root directory, buckets its subdirectories) behind `s3s`'s signature
//! checks, so that a wrong key is refused as a real provider would refuse it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;

/// The S3 service over `root`, accepting only requests signed with this key pair; with
/// `bucket`, that bucket exists from the start.
pub fn service(
    root: &Path,
    access_key: &str,
    secret_key: &str,
    bucket: Option<&str>,
) -> Result<S3Service, String> {
    if let Some(bucket) = bucket {
        // A bucket is a directory of the root for s3s-fs.
        std::fs::create_dir_all(root.join(bucket))
            .map_err(|e| format!("create bucket {bucket:?}: {e}"))?;
    }
    let store =
        s3s_fs::FileSystem::new(root).map_err(|e| format!("serve {}: {e:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(store);
    builder.set_auth(SimpleAuth::from_single(
        access_key.to_owned(),
        secret_key.to_owned(),
    ));
    Ok(builder.build())
}

/// Serves `service` on `listener`, one task per connection, forever.
pub async fn serve(listener: TcpListener, service: S3Service) {
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(error) => {
                eprintln!("accept: {error}");
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new().serve_connection(TokioIo::new(socket), service);
            if let Err(error) = connection.await {
                eprintln!("connection: {error}");
            }
        });
    }
}

/// Starts the server in this process, on 127.0.0.1 and a free port, on a thread of its own
/// that lives as long as the process; answers its endpoint (`http://127.0.0.1:PORT`).
pub fn spawn(
    root: &Path,
    access_key: &str,
    secret_key: &str,
    bucket: &str,
) -> Result<String, String> {
    let service = service(root, access_key, secret_key, Some(bucket))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("start the runtime: {e}"))?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listener = runtime
        .block_on(TcpListener::bind(address))
        .map_err(|e| format!("bind {address}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("s3-server".into())
        .spawn(move || runtime.block_on(serve(listener, service)))
        .map_err(|e| format!("start the server thread: {e}"))?;
    Ok(format!("http://{bound}"))
}
