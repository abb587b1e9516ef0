//! Examples of using `webhook-core`; see `embed_hyper.rs` and `custom_destination.rs`
//! (`cargo run -p webhook-examples --example custom_destination`).
