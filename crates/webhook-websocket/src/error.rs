use std::time::Duration;

use webhook_core::ModuleError;

/// What can go wrong sending a frame.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    #[error("not connected to the WebSocket peer (reconnecting)")]
    Disconnected,
    #[error("sending the frame failed")]
    Send(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("the connection closed before the peer answered")]
    ClosedBeforeReply,
    #[error("no answer from the peer within {0:?}")]
    NoReply(Duration),
    #[error("the destination is shut down")]
    Stopped,
}

impl From<WsError> for ModuleError {
    fn from(err: WsError) -> Self {
        let classified = match &err {
            WsError::Disconnected | WsError::Stopped => {
                ModuleError::unavailable("the WebSocket peer is unavailable")
            }
            WsError::Send(_) | WsError::ClosedBeforeReply | WsError::NoReply(_) => {
                ModuleError::retryable("the WebSocket peer did not take the frame")
            }
        };
        classified.with_source(err)
    }
}
