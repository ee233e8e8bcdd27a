//! The `/ws` endpoint: subprotocol negotiation, the reader (requests) and the writer (replies
//! and stream frames from the client's bounded queue).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use waypoint_protocol::{
    decode_client, encode, ClientMessage, Codec, ErrorCode, HelloMsg, ReplyBody, RequestId, ServerMessage, StreamName,
    PROTOCOL_VERSION, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK,
};

use crate::access::Rights;
use crate::api::oip::CLIENT_HEADER;
use crate::live::hub::{ClientQueue, Encoded, Outgoing};
use crate::live::scene_runner::CommandError;
use crate::state::AppState;

/// Upgrades to a WebSocket. Clients choose the codec with `Sec-WebSocket-Protocol`; without
/// one, JSON is used.
/// Longest client id accepted in `?client=` (routing stickiness key).
pub const MAX_CLIENT_ID: usize = 128;

pub async fn ws_handler(
    State(state): State<AppState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // The caller's identity for sticky routing: `?client=` or the `x-waypoint-client` header;
    // without either, the connection itself.
    let client = query
        .get("client")
        .cloned()
        .or_else(|| headers.get(CLIENT_HEADER).and_then(|h| h.to_str().ok()).map(str::to_string))
        .filter(|c| !c.is_empty() && c.len() <= MAX_CLIENT_ID);
    let ws = ws
        .protocols([SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON])
        .max_message_size(state.config.ws_hard_limit_bytes)
        .max_frame_size(state.config.ws_hard_limit_bytes);
    let codec =
        ws.selected_protocol().and_then(|h| h.to_str().ok()).and_then(Codec::from_subprotocol).unwrap_or(Codec::Json);
    // A browser cannot set headers on a WebSocket: the token may come as `?token=`.
    let token = crate::api::guard::bearer(&headers).or_else(|| query.get("token").map(String::as_str));
    let rights = state.access.tokens.rights(token);
    ws.on_upgrade(move |socket| serve_socket(state, socket, codec, client, rights))
}

/// One connection: its caller key for routing, what its token allows, its rate-limit key.
struct Conn {
    client: Arc<str>,
    rights: Rights,
    limit_key: String,
}

fn encode_msg(codec: Codec, msg: &ServerMessage) -> Option<Encoded> {
    match encode(codec, msg) {
        Ok(b) => Some(Encoded::from(b)),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a reply");
            None
        }
    }
}

async fn send(queue: &ClientQueue, msg: &ServerMessage) {
    if let Some(b) = encode_msg(queue.codec, msg) {
        queue.push_reply(b).await;
    }
}

async fn serve_socket(state: AppState, socket: WebSocket, codec: Codec, client: Option<String>, rights: Rights) {
    let metrics = state.metrics.clone();
    metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    metrics.ws_connections_total.fetch_add(1, Ordering::Relaxed);
    let (client_id, queue) = state.hub.connect(codec, &state.config);
    tracing::info!(client_id, codec = codec.subprotocol(), "websocket connected");
    let client: Arc<str> = client.unwrap_or_else(|| format!("ws-{client_id}")).into();
    let conn = Arc::new(Conn { client, rights, limit_key: format!("ws-{client_id}") });
    let (sink, mut stream) = socket.split();
    let hello = ServerMessage::Hello(HelloMsg {
        protocol: PROTOCOL_VERSION.into(),
        server: format!("waypoint {}", env!("CARGO_PKG_VERSION")),
        streams: StreamName::ALL.to_vec(),
        max_message_bytes: state.config.max_message_bytes,
        send_queue_frames: state.config.send_queue_frames,
    });
    send(&queue, &hello).await;
    let writer = tokio::spawn(write_loop(queue.clone(), sink));
    // Inference requests run concurrently (so they can share batches); this caps how many one
    // connection may have in flight before the server stops reading from it.
    let inflight = Arc::new(tokio::sync::Semaphore::new(MAX_INFLIGHT_PER_CONNECTION));
    while let Some(msg) = stream.next().await {
        let bytes = match msg {
            Ok(Message::Text(t)) => axum::body::Bytes::from(t),
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) => break,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Err(e) => {
                tracing::info!(client_id, error = %e, "websocket read ended");
                break;
            }
        };
        metrics.ws_messages_in.fetch_add(1, Ordering::Relaxed);
        match decode_client(queue.codec, &bytes, state.config.max_message_bytes) {
            Ok(msg @ (ClientMessage::Infer { .. } | ClientMessage::Batch { .. })) => {
                let Ok(permit) = inflight.clone().acquire_owned().await else { break };
                let (state, queue, conn) = (state.clone(), queue.clone(), conn.clone());
                tokio::spawn(async move {
                    handle(&state, &queue, &conn, Ok(msg)).await;
                    drop(permit);
                });
            }
            decoded => handle(&state, &queue, &conn, decoded).await,
        }
    }
    queue.close();
    let _ = writer.await;
    metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(client_id, "websocket closed");
}

async fn write_loop(queue: Arc<ClientQueue>, mut sink: SplitSink<WebSocket, Message>) {
    let codec = queue.codec;
    loop {
        let bytes = match queue.next().await {
            Outgoing::Message(b) => b,
            Outgoing::Dropped { count, total } => match encode_msg(codec, &ServerMessage::Dropped { count, total }) {
                Some(b) => b,
                None => continue,
            },
            Outgoing::Close => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        };
        let msg = match codec {
            Codec::MsgPack => Message::Binary(bytes),
            Codec::Json => match Utf8Bytes::try_from(bytes) {
                Ok(t) => Message::Text(t),
                Err(_) => continue,
            },
        };
        if sink.send(msg).await.is_err() {
            queue.close();
            break;
        }
    }
}

fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error { id, code, message: message.into() }
}

/// Most inference requests one connection may have running at once.
pub const MAX_INFLIGHT_PER_CONNECTION: usize = 256;

async fn handle(
    state: &AppState,
    queue: &ClientQueue,
    conn: &Conn,
    decoded: Result<ClientMessage, waypoint_protocol::DecodeError>,
) {
    let client = &*conn.client;
    let reply = match decoded {
        Err(e) => error(e.id, e.code, e.message),
        Ok(ClientMessage::Command { id, .. }) if !conn.rights.control => {
            error(Some(id), ErrorCode::Unauthorized, "scene commands need the API token (`?token=` on the connection)")
        }
        Ok(ClientMessage::Infer { id, .. } | ClientMessage::Batch { id, .. }) if !conn.rights.infer => error(
            Some(id),
            ErrorCode::Unauthorized,
            "inference needs the inference token (`?token=` on the connection)",
        ),

        Ok(ClientMessage::Subscribe { id, streams, options }) => {
            let now = queue.set_subscriptions(&streams, &[], Some(options));
            send(
                queue,
                &ServerMessage::Reply {
                    id,
                    result: ReplyBody { streams: Some(now), agent_id: None, fault: None, t_secs: None },
                },
            )
            .await;
            // A new `scene` subscriber gets the current state at once, not at the next tick.
            if streams.contains(&StreamName::Scene) {
                if let Some(bytes) =
                    state.scene.last_scene().and_then(|m| encode_msg(queue.codec, &ServerMessage::Scene(m)))
                {
                    queue.push_frame(bytes);
                }
            }
            return;
        }
        Ok(ClientMessage::Unsubscribe { id, streams }) => {
            let now = queue.set_subscriptions(&[], &streams, None);
            ServerMessage::Reply {
                id,
                result: ReplyBody { streams: Some(now), agent_id: None, fault: None, t_secs: None },
            }
        }
        Ok(ClientMessage::Command { id, command }) => match state.access.scene_commands.check(&conn.limit_key) {
            Err(wait) => error(
                Some(id),
                ErrorCode::RateLimited,
                format!("too many scene commands; retry after {:.2} s", wait.as_secs_f64()),
            ),
            Ok(()) => match state.scene.command(command).await {
                Ok(result) => ServerMessage::Reply { id, result },
                Err(e @ CommandError::Refused(_)) => error(Some(id), ErrorCode::BadCommand, e.to_string()),
                Err(e @ CommandError::Busy) => error(Some(id), ErrorCode::Overloaded, e.to_string()),
                Err(e @ CommandError::Gone) => error(Some(id), ErrorCode::Internal, e.to_string()),
            },
        },
        Ok(ClientMessage::Ping { id }) => ServerMessage::Pong { id, t_secs: state.scene.t_secs() },
        Ok(ClientMessage::Infer { id, request }) => {
            match crate::api::ws_infer::run(state, &request, queue.codec, client).await {
                Ok(result) => ServerMessage::InferResult { id, result },
                Err(e) => error(Some(id), e.code, e.message),
            }
        }
        Ok(ClientMessage::Batch { id, requests }) => {
            if requests.len() > waypoint_protocol::MAX_BATCH_REQUESTS {
                error(
                    Some(id),
                    ErrorCode::TooLarge,
                    format!("a batch may hold at most {} requests", waypoint_protocol::MAX_BATCH_REQUESTS),
                )
            } else {
                ServerMessage::BatchResult {
                    id,
                    results: crate::api::ws_infer::run_batch(state, &requests, queue.codec, client).await,
                }
            }
        }
    };
    if matches!(reply, ServerMessage::Error { .. }) {
        state.metrics.ws_errors.fetch_add(1, Ordering::Relaxed);
    }
    send(queue, &reply).await;
}
