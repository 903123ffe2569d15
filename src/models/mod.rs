//! Neural network definitions (burn, backend chosen at run time through `Device`).

pub mod unet;
