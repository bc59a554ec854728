//! Pure decisions over values: no I/O, no clock (time is passed in).

/// `as_str` (the stored string, through strum's `IntoStaticStr`) and a
/// `Display` that pads like a `str`, for enums whose strings are stored.
macro_rules! stored_strings {
    ($($t:ty),+ $(,)?) => {$(
        impl $t {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )+};
}

pub mod assign;
pub mod calendar;
pub mod case;
pub mod classify;
pub mod command;
pub mod event;
pub mod schedule;
pub mod types;
