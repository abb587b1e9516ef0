//! webhook-validators' integration tests: one test binary, one module per area.

mod vectors;
