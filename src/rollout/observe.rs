//! What the router says about the two colours right now: the split, which colour is
//! live, and what each holds. Read by plans, imports and the slots data source.

use crate::router::{Color, Record, RouterError, Split, TrafficRouter};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub split: Split,
    /// The colour with most of the traffic; `None` when neither has any.
    pub live: Option<Color>,
    pub records: [Record; 2],
    /// The live colour's generation (the higher of the two when neither is live; 0 when
    /// unrecorded).
    pub generation: i64,
}

impl Observed {
    pub fn release(&self, color: Color) -> Option<&str> {
        self.record(color).release.as_deref()
    }

    fn record(&self, color: Color) -> &Record {
        &self.records[color.index()]
    }

    /// What a split and the colours' records (blue's first) say.
    pub fn new(split: Split, records: [Record; 2]) -> Observed {
        let live = split.live();
        let generation = |r: &Record| r.generation.unwrap_or(0);
        // A colour's generation is recorded before its gate, so only the live colour's counts
        // (the standby's may be from a release that failed its gate).
        let generation = match live {
            Some(Color::Blue) => generation(&records[0]),
            Some(Color::Green) => generation(&records[1]),
            None => generation(&records[0]).max(generation(&records[1])),
        };
        Observed {
            split,
            live,
            records,
            generation,
        }
    }
}

/// Reads the split and both records: two calls.
pub async fn observe(router: &dyn TrafficRouter) -> Result<Observed, RouterError> {
    let split = router.weights().await?;
    let records = router.records().await?;
    Ok(Observed::new(split, records))
}
