//! Data layer of SAFE-PIT-CM (DESIGN section 3): simulation folders (`field.npy` +
//! `meta.json`), dataset manifests and splits, image sequences, validation, atomic writes.
//!
//! Every loader returns a [`DataError`] that names the file and the problem; nothing here
//! panics on user input.

pub mod atomic;
pub mod camera;
pub mod dataset;
pub mod error;
pub mod images;
pub mod meta;
pub mod npy;
pub mod source;
pub mod video;

pub use error::{DataError, ErrorKind};
pub use meta::{Meta, MetaOverrides};
pub use source::{Discovery, Frames, Source, discover};
pub use video::Video;
