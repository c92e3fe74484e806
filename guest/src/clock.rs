//! Calendar arithmetic for UTC timestamps: no time zones, no leap seconds, no dependencies.

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// Splits seconds since 1970-01-01T00:00:00Z into date and time of day (proleptic
    /// Gregorian calendar; Howard Hinnant's `civil_from_days`).
    pub fn from_unix_seconds(seconds: u64) -> Civil {
        let days = (seconds / 86_400) as i64;
        let of_day = (seconds % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: of_day / 3_600,
            minute: of_day % 3_600 / 60,
            second: of_day % 60,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of [`Civil::from_unix_seconds`]'s date part).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The ISO 8601 week of an instant: its week-numbering year and week (1 to 53). Weeks start
/// on Monday; week 1 is the one holding the year's first Thursday, so a week belongs to the
/// year its Thursday is in.
pub fn iso_week(seconds: u64) -> (i64, u32) {
    let days = (seconds / 86_400) as i64;
    // 1970-01-01 was a Thursday: Monday is 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let year = Civil::from_unix_seconds((thursday * 86_400) as u64).year;
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Civil {
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(Civil::from_unix_seconds(0), civil(1970, 1, 1, 0, 0, 0));
        assert_eq!(
            Civil::from_unix_seconds(951_782_400),
            civil(2000, 2, 29, 0, 0, 0)
        );
        assert_eq!(
            Civil::from_unix_seconds(1_748_316_670),
            civil(2025, 5, 27, 3, 31, 10)
        );
        assert_eq!(
            Civil::from_unix_seconds(4_102_444_799),
            civil(2099, 12, 31, 23, 59, 59)
        );
    }

    #[test]
    fn days_from_civil_inverts_from_unix_seconds() {
        for day in (0..(400 * 366)).step_by(13) {
            let c = Civil::from_unix_seconds(day * 86_400);
            assert_eq!(days_from_civil(c.year, c.month, c.day), day as i64);
        }
    }

    #[test]
    fn iso_weeks_at_year_boundaries() {
        let week = |y, m, d| iso_week((days_from_civil(y, m, d) * 86_400) as u64 + 43_200);
        // 2020-12-31 is a Thursday: week 53 of 2020, and so is Sunday 2021-01-03.
        assert_eq!(week(2020, 12, 31), (2020, 53));
        assert_eq!(week(2021, 1, 3), (2020, 53));
        assert_eq!(week(2021, 1, 4), (2021, 1));
        // 2024-12-30 is a Monday whose Thursday is in 2025.
        assert_eq!(week(2024, 12, 29), (2024, 52));
        assert_eq!(week(2024, 12, 30), (2025, 1));
        assert_eq!(week(2025, 5, 27), (2025, 22));
        assert_eq!(week(1970, 1, 1), (1970, 1));
        assert_eq!(week(2026, 1, 1), (2026, 1));
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut previous = Civil::from_unix_seconds(0);
        for day in 1..(400 * 366) {
            let next = Civil::from_unix_seconds(day * 86_400);
            let same_month = next.year == previous.year && next.month == previous.month;
            if same_month {
                assert_eq!(next.day, previous.day + 1);
            } else {
                assert_eq!(next.day, 1);
                assert!(previous.day >= 28);
            }
            previous = next;
        }
    }
}
