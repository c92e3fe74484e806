use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::clock::days_from_civil;

fn at(seconds: u64) -> Datetime {
    Datetime {
        seconds,
        nanoseconds: 0,
    }
}

fn backup(seconds: u64) -> Candidate {
    Candidate {
        created: at(seconds),
        subject: true,
        verified: false,
    }
}

/// Seconds since the epoch of a UTC date and hour.
fn utc(year: i64, month: u32, day: u32, hour: u64) -> u64 {
    days_from_civil(year, month, day) as u64 * 86_400 + hour * 3_600
}

/// Rules with no rule set (the generated record has no `Default`).
fn no_rules() -> Retention {
    Retention {
        keep_last: None,
        keep_hourly: None,
        keep_daily: None,
        keep_weekly: None,
        keep_monthly: None,
        keep_yearly: None,
        keep_within_seconds: None,
        include_named: false,
    }
}

fn kept(verdicts: &[Verdict]) -> Vec<usize> {
    (0..verdicts.len()).filter(|&i| verdicts[i].keep).collect()
}

#[test]
fn no_rule_or_only_rules_of_zero_is_empty() {
    assert!(is_empty(&no_rules()));
    let zeros = Retention {
        keep_last: Some(0),
        keep_within_seconds: Some(0),
        include_named: true,
        ..no_rules()
    };
    assert!(is_empty(&zeros));
    for rules in [
        Retention {
            keep_yearly: Some(1),
            ..no_rules()
        },
        Retention {
            keep_within_seconds: Some(1),
            ..no_rules()
        },
    ] {
        assert!(!is_empty(&rules));
    }
}

#[test]
fn keep_last_keeps_the_newest_n_and_says_their_rank() {
    let backups: Vec<Candidate> = (0..5).map(|h| backup(h * 3_600)).collect();
    let rules = Retention {
        keep_last: Some(2),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [3, 4]);
    assert_eq!(verdicts[3].reasons, ["last 2"]);
    assert_eq!(verdicts[4].reasons, ["last 1", NEWEST]);
    assert_eq!(verdicts[0].reasons, [NO_RULE]);
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day_that_holds_a_backup() {
    // Two backups on the 1st, none on the 2nd, three on the 3rd, one on the 4th.
    let backups: Vec<Candidate> = [
        utc(2025, 5, 1, 1),
        utc(2025, 5, 1, 9),
        utc(2025, 5, 3, 0),
        utc(2025, 5, 3, 5),
        utc(2025, 5, 3, 23),
        utc(2025, 5, 4, 12),
    ]
    .into_iter()
    .map(backup)
    .collect();
    let rules = Retention {
        keep_daily: Some(2),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [4, 5]);
    assert_eq!(verdicts[4].reasons, ["daily 2025-05-03"]);
    // Three days hold backups; a rule of 3 reaches the 1st, 4 also keeps the oldest.
    let three = decide(
        &backups,
        &Retention {
            keep_daily: Some(3),
            ..no_rules()
        },
    );
    assert_eq!(kept(&three), [1, 4, 5]);
    let four = decide(
        &backups,
        &Retention {
            keep_daily: Some(4),
            ..no_rules()
        },
    );
    assert_eq!(kept(&four), [0, 1, 4, 5]);
    assert_eq!(four[0].reasons, ["oldest daily 2025-05-01"]);
}

#[test]
fn weekly_buckets_are_iso_weeks_across_the_new_year() {
    // Sunday 2024-12-29 is in 2024-W52; Monday 2024-12-30 and 2025-01-01 in 2025-W01.
    let backups: Vec<Candidate> = [
        utc(2024, 12, 29, 12),
        utc(2024, 12, 30, 12),
        utc(2025, 1, 1, 12),
    ]
    .into_iter()
    .map(backup)
    .collect();
    let rules = Retention {
        keep_weekly: Some(2),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [0, 2]);
    assert_eq!(verdicts[0].reasons, ["weekly 2024-W52"]);
    assert_eq!(verdicts[2].reasons[0], "weekly 2025-W01");
}

#[test]
fn monthly_yearly_and_hourly_label_their_bucket() {
    let backups = [backup(utc(2025, 5, 27, 3) + 70)];
    let rules = Retention {
        keep_hourly: Some(1),
        keep_monthly: Some(1),
        keep_yearly: Some(1),
        ..no_rules()
    };
    assert_eq!(
        decide(&backups, &rules)[0].reasons,
        [
            "hourly 2025-05-27 03:00",
            "monthly 2025-05",
            "yearly 2025",
            NEWEST
        ]
    );
}

// restic keeps what is made strictly after the newest backup's time minus the duration.
#[test]
fn keep_within_counts_back_from_the_newest_backup_not_from_now() {
    let backups: Vec<Candidate> = [0, 100, 3_600, 3_601, 7_200]
        .into_iter()
        .map(backup)
        .collect();
    let rules = Retention {
        keep_within_seconds: Some(3_600),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [3, 4]);
    assert_eq!(verdicts[3].reasons, [WITHIN]);
}

#[test]
fn rules_combine_as_a_union_and_each_reason_is_given() {
    let backups: Vec<Candidate> = (0..48).map(|h| backup(utc(2025, 5, 1, h))).collect();
    let rules = Retention {
        keep_last: Some(3),
        keep_daily: Some(2),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [23, 45, 46, 47]);
    assert_eq!(verdicts[47].reasons, ["last 1", "daily 2025-05-02", NEWEST]);
}

#[test]
fn named_backups_are_kept_and_do_not_take_a_bucket() {
    let mut backups: Vec<Candidate> = (0..4).map(|d| backup(utc(2025, 5, 1 + d, 6))).collect();
    // A person's backup, later on the newest day: without it the 4th would be the newest.
    backups.push(Candidate {
        subject: false,
        ..backup(utc(2025, 5, 4, 7))
    });
    let rules = Retention {
        keep_daily: Some(1),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [3, 4]);
    assert_eq!(verdicts[3].reasons, ["daily 2025-05-04"]);
    assert_eq!(verdicts[4].reasons, [NEWEST, NAMED]);
    let including = Retention {
        include_named: true,
        ..rules
    };
    let all_subject: Vec<Candidate> = backups
        .iter()
        .map(|b| Candidate {
            subject: true,
            ..*b
        })
        .collect();
    assert_eq!(kept(&decide(&all_subject, &including)), [4]);
}

#[test]
fn the_newest_verified_backup_is_kept_whatever_the_rules() {
    let mut backups: Vec<Candidate> = (0..5).map(|h| backup(h * 3_600)).collect();
    backups[1].verified = true;
    backups[2].verified = true;
    let rules = Retention {
        keep_last: Some(1),
        ..no_rules()
    };
    let verdicts = decide(&backups, &rules);
    assert_eq!(kept(&verdicts), [2, 4]);
    assert_eq!(verdicts[2].reasons, [NEWEST_VERIFIED]);
}

// --- Property tests against a reference written differently -----------------------------

/// The reference: for each rule, a map from bucket to the newest backup in it; the rule keeps
/// the newest of its N latest buckets, and the oldest subject backup when fewer than N
/// buckets hold one. Buckets are computed from the calendar directly, not through
/// `Period::bucket`.
fn reference(backups: &[Candidate], rules: &Retention) -> BTreeSet<usize> {
    let subject: Vec<usize> = (0..backups.len()).filter(|&i| backups[i].subject).collect();
    let mut keep = BTreeSet::new();
    let rank = |i: usize| subject.iter().position(|&j| j == i).expect("subject");
    type Key = fn(u64, usize) -> (i64, i64, i64, i64);
    let keys: [(Option<u32>, Key); 6] = [
        (rules.keep_last, |_, rank| (rank as i64, 0, 0, 0)),
        (rules.keep_hourly, |s, _| {
            let c = Civil::from_unix_seconds(s);
            (c.year, c.month.into(), c.day.into(), c.hour.into())
        }),
        (rules.keep_daily, |s, _| {
            let c = Civil::from_unix_seconds(s);
            (c.year, c.month.into(), c.day.into(), 0)
        }),
        (rules.keep_weekly, |s, _| {
            // ISO week by its Monday: the same bucket as (ISO year, week).
            let days = (s / 86_400) as i64;
            (days - (days + 3).rem_euclid(7), 0, 0, 0)
        }),
        (rules.keep_monthly, |s, _| {
            let c = Civil::from_unix_seconds(s);
            (c.year, c.month.into(), 0, 0)
        }),
        (rules.keep_yearly, |s, _| {
            (Civil::from_unix_seconds(s).year, 0, 0, 0)
        }),
    ];
    for (n, key) in keys {
        let n = n.unwrap_or(0) as usize;
        if n == 0 {
            continue;
        }
        let mut newest_in: BTreeMap<(i64, i64, i64, i64), usize> = BTreeMap::new();
        for &i in &subject {
            newest_in.insert(key(backups[i].created.seconds, rank(i)), i);
        }
        keep.extend(newest_in.values().rev().take(n));
        if newest_in.len() < n {
            keep.extend(subject.first());
        }
    }
    if let (Some(within), Some(&newest)) = (rules.keep_within_seconds, subject.last()) {
        let newest = backups[newest].created;
        for &i in &subject {
            let t = backups[i].created;
            let age = (u128::from(newest.seconds) * 1_000_000_000 + u128::from(newest.nanoseconds))
                - (u128::from(t.seconds) * 1_000_000_000 + u128::from(t.nanoseconds));
            if age < u128::from(within) * 1_000_000_000 {
                keep.insert(i);
            }
        }
    }
    keep.extend(backups.len().checked_sub(1));
    keep.extend(backups.iter().rposition(|b| b.verified));
    keep.extend((0..backups.len()).filter(|&i| !backups[i].subject));
    keep
}

fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    // Up to 60 backups within about three years from 2023-12-20 (a year boundary and ISO
    // weeks 52/53), clustered enough that buckets often hold several.
    let start = utc(2023, 12, 20, 0);
    let span = prop_oneof![Just(6 * 3_600u64), Just(20 * 86_400), Just(1_100 * 86_400)];
    (span, 0..60usize).prop_flat_map(move |(span, n)| {
        prop::collection::vec(
            (
                // Whole hours often, so that ties with `within`'s bound happen.
                prop_oneof![0..span, (0..span / 3_600).prop_map(|h| h * 3_600)],
                prop_oneof![Just(0), 0..1_000_000_000u32],
                any::<bool>(),
                prop::bool::weighted(0.2),
            ),
            n,
        )
        .prop_map(move |raw| {
            let mut backups: Vec<Candidate> = raw
                .into_iter()
                .map(|(offset, nanoseconds, subject, verified)| Candidate {
                    created: Datetime {
                        seconds: start + offset,
                        nanoseconds,
                    },
                    subject: subject || verified,
                    verified,
                })
                .collect();
            backups.sort_by_key(|b| (b.created.seconds, b.created.nanoseconds));
            backups
        })
    })
}

fn rules() -> impl Strategy<Value = Retention> {
    let count = || prop::option::of(0..8u32);
    (
        (count(), count(), count(), count(), count(), count()),
        prop::option::of(prop_oneof![
            0..7_200u64,
            0..40 * 86_400u64,
            (0..48u64).prop_map(|h| h * 3_600)
        ]),
        any::<bool>(),
    )
        .prop_map(
            |((last, hourly, daily, weekly, monthly, yearly), within, include_named)| Retention {
                keep_last: last,
                keep_hourly: hourly,
                keep_daily: daily,
                keep_weekly: weekly,
                keep_monthly: monthly,
                keep_yearly: yearly,
                keep_within_seconds: within,
                include_named,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn kept_set_equals_the_reference(backups in candidates(), rules in rules()) {
        let verdicts = decide(&backups, &rules);
        let kept: BTreeSet<usize> = kept(&verdicts).into_iter().collect();
        prop_assert_eq!(kept, reference(&backups, &rules));
    }

    #[test]
    fn protected_backups_are_never_removed(backups in candidates(), rules in rules()) {
        let verdicts = decide(&backups, &rules);
        prop_assert_eq!(verdicts.len(), backups.len());
        if let Some(newest) = verdicts.last() {
            prop_assert!(newest.keep && newest.reasons.iter().any(|r| r == NEWEST));
        }
        if let Some(i) = backups.iter().rposition(|b| b.verified) {
            prop_assert!(verdicts[i].keep);
            prop_assert!(verdicts[i].reasons.iter().any(|r| r == NEWEST_VERIFIED));
        }
        for (backup, verdict) in backups.iter().zip(&verdicts) {
            if !backup.subject {
                prop_assert!(verdict.keep);
                prop_assert_eq!(verdict.reasons.iter().filter(|r| *r == NAMED).count(), 1);
            }
            prop_assert_eq!(verdict.keep, verdict.reasons != [NO_RULE]);
            prop_assert!(!verdict.reasons.is_empty());
        }
    }
}
