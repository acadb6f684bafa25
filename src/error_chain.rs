//! An error and its causes: the one walk over `source()` that classifying errors and
//! writing them on one line both use.
//!
//! Only `Display` forms are used, never `Debug` (nor the SDK's `DisplayErrorContext`,
//! which appends it): an SDK error's `Debug` holds the raw HTTP response, headers and
//! body, and a server or proxy that echoes the request echoes its signed `Authorization`
//! and `X-Amz-Security-Token` in it.

use std::error::Error;

/// An error and its causes, outermost first.
pub fn causes<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |e| cause(*e))
}

/// The cause of an error. `io::Error::source` skips the error an `io::Error` wraps
/// (where TLS and hyper errors hide), so that one is taken instead.
fn cause<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match error.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => error.source(),
    }
}

/// An error and its causes on one line, `a: b: c`, with repeats dropped (hyper, `io::Error`
/// and the SDK often wrap an error in one that says the same).
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in causes(error) {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrapper(&'static str, Option<Box<dyn Error + Send + Sync>>);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn the_chain_goes_through_io_errors_and_drops_repeats() {
        let inner = Wrapper("certificate expired", None);
        let io = std::io::Error::other(inner);
        let outer = Wrapper(
            "client error",
            Some(Box::new(Wrapper("connect", Some(Box::new(io))))),
        );
        // io::Error shows its inner error's text: said once.
        assert_eq!(
            one_line(&outer),
            "client error: connect: certificate expired"
        );
        let last = causes(&outer).last().unwrap();
        assert!(last.downcast_ref::<Wrapper>().is_some());
    }
}
