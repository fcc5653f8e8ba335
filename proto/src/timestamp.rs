//! `google.protobuf.Timestamp` with protojson's exact text form.
//!
//! pbjson-types prints `+00:00` where protojson (Go, C++, Python) prints `Z`, so
//! tools comparing `hubble observe -o json` output would see different strings.
//! This type keeps prost's wire encoding and fixes the JSON: UTC with `Z`, and 0, 3,
//! 6 or 9 fractional digits, as protojson chooses them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds and nanoseconds since the Unix epoch (field numbers as in `timestamp.proto`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// Protojson's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
    const MIN_SECONDS: i64 = -62_135_596_800;
    const MAX_SECONDS: i64 = 253_402_300_799;

    pub fn from_unix_nanos(nanos: i128) -> Self {
        let seconds = nanos.div_euclid(1_000_000_000);
        let subsec = nanos.rem_euclid(1_000_000_000);
        Self {
            seconds: i64::try_from(seconds).unwrap_or(if seconds < 0 { i64::MIN } else { i64::MAX }),
            nanos: i32::try_from(subsec).unwrap_or(0),
        }
    }

    /// Nanoseconds since the epoch; orders timestamps with a single comparison.
    pub fn as_unix_nanos(&self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }

    pub fn now() -> Self {
        SystemTime::now().into()
    }

    fn to_datetime(self) -> Option<DateTime<Utc>> {
        if !(Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&self.seconds) {
            return None;
        }
        DateTime::from_timestamp(
            self.seconds,
            u32::try_from(self.nanos).ok().filter(|n| *n < 1_000_000_000)?,
        )
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let nanos = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
        };
        Self::from_unix_nanos(nanos)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(ts: Timestamp) -> Self {
        let nanos = ts.as_unix_nanos();
        let magnitude = Duration::from_nanos(u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX));
        if nanos >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(time) => f.write_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "<invalid timestamp {}s {}ns>", self.seconds, self.nanos),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let time = self.to_datetime().ok_or_else(|| {
            serde::ser::Error::custom(format!(
                "timestamp {}s {}ns outside protojson's range",
                self.seconds, self.nanos
            ))
        })?;
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let time = DateTime::parse_from_rfc3339(&text)
            .map_err(|err| serde::de::Error::custom(format!("timestamp {text:?}: {err}")))?;
        let time = time.with_timezone(&Utc);
        Ok(Self {
            seconds: time.timestamp(),
            nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;

    fn json(seconds: i64, nanos: i32) -> String {
        serde_json::to_string(&Timestamp { seconds, nanos }).expect("in range")
    }

    #[test]
    fn prints_utc_with_z_and_protojson_fraction_widths() {
        assert_eq!(json(0, 0), r#""1970-01-01T00:00:00Z""#);
        assert_eq!(json(1, 500_000_000), r#""1970-01-01T00:00:01.500Z""#);
        assert_eq!(json(1, 1_000), r#""1970-01-01T00:00:01.000001Z""#);
        assert_eq!(json(1, 1), r#""1970-01-01T00:00:01.000000001Z""#);
    }

    #[test]
    fn parses_any_offset_and_rejects_garbage() {
        let parsed: Timestamp = serde_json::from_str(r#""1970-01-01T02:00:01.25+02:00""#).expect("valid");
        assert_eq!(
            parsed,
            Timestamp {
                seconds: 1,
                nanos: 250_000_000
            }
        );
        let err = serde_json::from_str::<Timestamp>(r#""yesterday""#).expect_err("invalid");
        assert!(err.to_string().contains("yesterday"), "{err}");
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        assert!(
            serde_json::to_string(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_err()
        );
        assert!(serde_json::to_string(&Timestamp { seconds: 0, nanos: -1 }).is_err());
    }

    #[test]
    fn converts_to_and_from_system_time() {
        let ts = Timestamp {
            seconds: 1_700_000_000,
            nanos: 42,
        };
        let back: Timestamp = std::time::SystemTime::from(ts).into();
        assert_eq!(back, ts);
        assert_eq!(
            Timestamp::from_unix_nanos(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
    }
}
