//! An s3s service served over HTTP/1 on a bound listener, one task per connection: the
//! in-process S3 server of these tests and, included by path, of the `s3_server` bench.

/// Accepts connections on `listener` and serves `service` on each, until accepting fails.
pub async fn accept(listener: tokio::net::TcpListener, service: s3s::service::S3Service) {
    while let Ok((socket, _)) = listener.accept().await {
        let service = service.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(socket);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}
