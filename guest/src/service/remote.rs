//! Offsite copies: what goes to a remote target, under which keys, what a target keeps, and
//! what comes back. The host moves and encodes the bytes; every decision is here.

use std::collections::BTreeSet;

use super::{Host, Service, backup_file, check, describe_error};
use crate::litegraph::backup::remote::{Download, Target};
use crate::litegraph::backup::types::{
    BackupFile, Datetime, Error, FileStat, PruneDecision, PushOutcome, RemoteBackup,
    RemoteVerification, Retention,
};
use crate::manifest::{self, DATA, MANIFESTS, Manifest};
use crate::metadata::{Metadata, sidecar_name};
use crate::retention::{self, Candidate};

/// How old an object no manifest names must be before `remote-prune` removes it: younger
/// ones may belong to a push still under way (a manifest is written only once its bytes are
/// stored, which for a large backup takes minutes).
const LEFTOVER_AGE_SECONDS: u64 = 3600;

impl<H: Host> Service<H> {
    /// Pushes backup `name` to `target`, or to every target.
    pub fn push(&self, name: &str, target: Option<&str>) -> Result<Vec<PushOutcome>, Error> {
        check(name)?;
        let targets = match target {
            Some(target) => vec![self.target(target)?],
            None => {
                let all = self.host.remote_targets();
                if all.is_empty() {
                    return Err(no_targets());
                }
                all
            }
        };
        let record = self.record(name)?;
        let mut outcomes = Vec::with_capacity(targets.len());
        for target in targets {
            let outcome = self
                .push_to(&record.metadata, &target)
                .map_err(|error| on_target(&target.name, error))?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// One target's push: the bytes to a fresh object, checked, then the manifest.
    fn push_to(&self, metadata: &Metadata, target: &Target) -> Result<PushOutcome, Error> {
        let name = &metadata.filename;
        let manifest_key = manifest::manifest_key(name);
        if let Some(held) = self.held(&target.name, &manifest_key)? {
            return already_held(metadata, held, &target.name);
        }
        let pushed = self.host.now();
        let key = manifest::data_key(name, pushed, &target.encoding);
        let upload = self.host.remote_put_file(&target.name, &key, name)?;
        if upload.source_sha256 != metadata.digests.sha256
            || upload.source_length != metadata.length
        {
            let _ = self.host.remote_delete(&target.name, &key);
            return Err(Error::Corrupt(format!(
                "{name} is not the backup that was recorded (read {} bytes with SHA-256 {}, \
                 recorded {} bytes with SHA-256 {}): nothing was pushed; verify it",
                upload.source_length,
                upload.source_sha256,
                metadata.length,
                metadata.digests.sha256
            )));
        }
        let manifest = Manifest {
            filename: name.clone(),
            length: metadata.length,
            digests: metadata.digests.clone(),
            created: metadata.created,
            origin: metadata.origin,
            key: key.clone(),
            encoding: upload.encoding,
            stored_length: upload.length,
            stored_sha256: upload.sha256,
            pushed: self.host.now(),
        };
        match self
            .host
            .remote_put(&target.name, &manifest_key, &manifest.encode())
        {
            Ok(()) => {}
            Err(Error::Exist) => {
                // Another push of the same backup finished first: its copy stands.
                let _ = self.host.remote_delete(&target.name, &key);
                return match self.held(&target.name, &manifest_key)? {
                    Some(held) => already_held(metadata, held, &target.name),
                    None => Err(Error::Exist),
                };
            }
            Err(error) => {
                let _ = self.host.remote_delete(&target.name, &key);
                return Err(error);
            }
        }
        self.forget_earlier_attempts(&target.name, name, &key);
        Ok(PushOutcome {
            pushed: remote_backup(&target.name, manifest),
            uploaded: true,
        })
    }

    /// Removes the objects of earlier, interrupted attempts at pushing `name` (best effort:
    /// `remote-prune` removes what is left).
    fn forget_earlier_attempts(&self, target: &str, name: &str, kept: &str) {
        let Ok(objects) = self.host.remote_list(target, &manifest::data_prefix(name)) else {
            return;
        };
        for object in objects.iter().filter(|object| object.key != kept) {
            let _ = self.host.remote_delete(target, &object.key);
        }
    }

    /// The manifest stored at `key`, if any. One that cannot be read as a manifest is an
    /// error: the backup's name is taken on the target by something this policy cannot
    /// vouch for.
    fn held(&self, target: &str, key: &str) -> Result<Option<Manifest>, Error> {
        match self.host.remote_get(target, key) {
            Ok(bytes) => match Manifest::decode(&bytes) {
                Some(manifest) => Ok(Some(manifest)),
                None => Err(Error::Corrupt(format!(
                    "the manifest {key} is damaged or not a manifest"
                ))),
            },
            Err(Error::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The local backups `target` holds no copy of, oldest first.
    pub fn unpushed(&self, target: &str) -> Result<Vec<String>, Error> {
        let target = self.target(target)?;
        let held: BTreeSet<String> = self
            .manifests(&target.name)
            .map_err(|error| on_target(&target.name, error))?
            .into_iter()
            .map(|manifest| manifest.filename)
            .collect();
        Ok(self
            .catalogue()?
            .into_iter()
            .map(|record| record.metadata.filename)
            .filter(|name| !held.contains(name))
            .collect())
    }

    /// The backups `target` holds, oldest first.
    pub fn remote_list(&self, target: &str) -> Result<Vec<RemoteBackup>, Error> {
        let target = self.target(target)?;
        let manifests = self
            .manifests(&target.name)
            .map_err(|error| on_target(&target.name, error))?;
        Ok(manifests
            .into_iter()
            .map(|manifest| remote_backup(&target.name, manifest))
            .collect())
    }

    /// Every well-formed manifest on `target`, oldest first. One that cannot be read or
    /// decoded is left out (it is no complete backup); one that vanishes while listing is
    /// too (a concurrent prune).
    fn manifests(&self, target: &str) -> Result<Vec<Manifest>, Error> {
        let mut manifests = Vec::new();
        for object in self.host.remote_list(target, MANIFESTS)? {
            let Some(name) = manifest::named_by_manifest_key(&object.key) else {
                continue;
            };
            match self.host.remote_get(target, &object.key) {
                Ok(bytes) => manifests
                    .extend(Manifest::decode(&bytes).filter(|manifest| manifest.filename == name)),
                Err(Error::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        manifests.sort_by(|a, b| {
            (a.created.seconds, a.created.nanoseconds, &a.filename).cmp(&(
                b.created.seconds,
                b.created.nanoseconds,
                &b.filename,
            ))
        });
        Ok(manifests)
    }

    /// Copies backup `name` from `target` into the backup directory, checked.
    pub fn pull(&self, target: &str, name: &str) -> Result<BackupFile, Error> {
        check(name)?;
        let target = self.target(target)?;
        if self.exists_on_disk(name)? {
            return Err(Error::Exist);
        }
        let (manifest, download) = self
            .fetch(&target.name, name)
            .map_err(|error| on_target(&target.name, error))?;
        let mut problems = differences(&manifest, &download);
        if problems.is_empty() {
            match self.host.check(&download.name, false) {
                Ok(()) => {}
                Err(Error::Corrupt(finding)) => problems.push(format!("quick_check: {finding}")),
                Err(error) => return Err(on_target(&target.name, error)),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Corrupt(format!(
                "the copy of {name} on {} does not match its manifest, nothing was published: {}",
                target.name,
                problems.join("; ")
            )));
        }
        self.host.rename_noreplace(&download.name, name)?;
        let recorded = self.host.stat(name).and_then(|stat| {
            let metadata = Metadata {
                filename: name.to_owned(),
                length: stat.length,
                digests: manifest.digests.clone(),
                created: manifest.created,
                birth: stat.created,
                origin: manifest.origin,
                last_verification: None,
                last_drill: None,
            };
            self.host.write(&sidecar_name(name), &metadata.encode())?;
            Ok(backup_file(metadata, &stat))
        });
        if recorded.is_err() {
            let _ = self.host.remove(name);
        }
        recorded
    }

    /// The manifest of `name` on `target`, and its bytes downloaded and decoded.
    fn fetch(&self, target: &str, name: &str) -> Result<(Manifest, Download), Error> {
        let manifest = self
            .held(target, &manifest::manifest_key(name))?
            .ok_or(Error::NotFound)?;
        if manifest.filename != name {
            return Err(Error::Corrupt(format!(
                "the manifest of {name} describes {}",
                manifest.filename
            )));
        }
        let download = self
            .host
            .remote_get_file(target, &manifest.key, &manifest.encoding)
            .map_err(|error| match error {
                Error::Corrupt(finding) => Error::Corrupt(undecodable(name, &finding)),
                Error::NotFound => Error::Corrupt(missing_object(&manifest)),
                other => other,
            })?;
        Ok((manifest, download))
    }

    /// `pull`'s checks, keeping nothing.
    pub fn remote_verify(&self, target: &str, name: &str) -> Result<RemoteVerification, Error> {
        check(name)?;
        let target = self.target(target)?;
        let on = |error| on_target(&target.name, error);
        let manifest = self
            .held(&target.name, &manifest::manifest_key(name))
            .map_err(on)?
            .ok_or(Error::NotFound)?;
        let (actual, problems) =
            match self
                .host
                .remote_get_file(&target.name, &manifest.key, &manifest.encoding)
            {
                Ok(download) => {
                    let mut problems = differences(&manifest, &download);
                    if problems.is_empty() {
                        match self.host.check(&download.name, false) {
                            Ok(()) => {}
                            Err(Error::Corrupt(finding)) => {
                                problems.push(format!("quick_check: {finding}"));
                            }
                            Err(error) => return Err(on(error)),
                        }
                    }
                    let _ = self.host.remove(&download.name);
                    (download.digests, problems)
                }
                Err(Error::Corrupt(finding)) => (no_digests(), vec![undecodable(name, &finding)]),
                Err(Error::NotFound) => (no_digests(), vec![missing_object(&manifest)]),
                Err(error) => return Err(on(error)),
            };
        Ok(RemoteVerification {
            remote: remote_backup(&target.name, manifest),
            actual,
            problems,
        })
    }

    /// Retention on `target`: the rules of `prune`, over what the target holds.
    pub fn remote_prune(
        &self,
        target: &str,
        rules: &Retention,
        dry_run: bool,
    ) -> Result<Vec<PruneDecision>, Error> {
        if retention::is_empty(rules) {
            return Err(Error::InvalidArgument(
                "no retention rule given (or only rules of 0): such a prune would remove every \
                 backup on the target; give at least one keep rule"
                    .into(),
            ));
        }
        let target = self.target(target)?;
        let target = target.name.as_str();
        let manifests = self
            .manifests(target)
            .map_err(|error| on_target(target, error))?;
        let candidates: Vec<Candidate> = manifests
            .iter()
            .map(|manifest| Candidate {
                created: manifest.created,
                subject: rules.include_named || manifest.origin.chosen_by_policy(),
                // Verification is a local record: remotely only the newest is protected.
                verified: false,
            })
            .collect();
        let verdicts = retention::decide(&candidates, rules);
        let mut kept_keys = Vec::new();
        let decisions = manifests
            .into_iter()
            .zip(verdicts)
            .map(|(manifest, verdict)| {
                let removal_failed = match verdict.keep || dry_run {
                    true => {
                        kept_keys.push(manifest.key.clone());
                        None
                    }
                    false => self.remove_remote(target, &manifest),
                };
                PruneDecision {
                    backup: remote_backup(target, manifest).backup,
                    keep: verdict.keep,
                    reasons: verdict.reasons,
                    removal_failed,
                }
            })
            .collect();
        if !dry_run {
            self.remove_leftovers(target, &kept_keys);
        }
        Ok(decisions)
    }

    /// Removes one backup from a target: the manifest first (it stops being a backup),
    /// then its bytes. The error's sentence when that fails.
    fn remove_remote(&self, target: &str, manifest: &Manifest) -> Option<String> {
        match self
            .host
            .remote_delete(target, &manifest::manifest_key(&manifest.filename))
        {
            Ok(()) | Err(Error::NotFound) => {}
            Err(error) => return Some(describe_error(&error)),
        }
        match self.host.remote_delete(target, &manifest.key) {
            Ok(()) | Err(Error::NotFound) => None,
            Err(error) => Some(describe_error(&error)),
        }
    }

    /// Removes data objects no kept manifest names that are old enough not to belong to a
    /// push under way (best effort).
    fn remove_leftovers(&self, target: &str, kept: &[String]) {
        let Ok(objects) = self.host.remote_list(target, DATA) else {
            return;
        };
        let now = self.host.now().seconds;
        for object in objects {
            let old = now.saturating_sub(object.last_modified.seconds) >= LEFTOVER_AGE_SECONDS;
            if old && !kept.contains(&object.key) {
                let _ = self.host.remote_delete(target, &object.key);
            }
        }
    }

    /// The target of that name, among those the host lends.
    fn target(&self, name: &str) -> Result<Target, Error> {
        let targets = self.host.remote_targets();
        if targets.is_empty() {
            return Err(no_targets());
        }
        let known: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        let known = known.join(", ");
        targets
            .into_iter()
            .find(|target| target.name == name)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "there is no remote target named {name:?} (the targets are: {known})"
                ))
            })
    }
}

fn no_targets() -> Error {
    Error::InvalidArgument("no remote target is configured".into())
}

/// The digests of content that could not be had.
fn no_digests() -> crate::litegraph::backup::types::FileDigests {
    crate::litegraph::backup::types::FileDigests {
        md5: String::new(),
        sha1: String::new(),
        sha256: String::new(),
    }
}

/// A manifest whose object is gone: the backup is listed but cannot be had.
fn missing_object(manifest: &Manifest) -> String {
    format!(
        "its manifest names the object {}, which the target no longer holds",
        manifest.key
    )
}

/// A stored object that does not decode: what the host found, and what it means.
fn undecodable(name: &str, finding: &str) -> String {
    format!(
        "the stored copy of {name} does not decode ({finding}): it was damaged or changed \
         after the push"
    )
}

/// An error of one target, saying which (unless the host's sentence does already).
fn on_target(target: &str, error: Error) -> Error {
    let named = format!("remote target {target}");
    let on = |why: String| match why.starts_with(&named) {
        true => why,
        false => format!("{named}: {why}"),
    };
    match error {
        Error::Io(why) => Error::Io(on(why)),
        Error::NotPermitted(why) => Error::NotPermitted(on(why)),
        Error::Corrupt(why) => Error::Corrupt(on(why)),
        Error::InvalidArgument(why) => Error::InvalidArgument(on(why)),
        other => other,
    }
}

/// A push that finds the backup on the target already: fine if it is this backup.
fn already_held(metadata: &Metadata, held: Manifest, target: &str) -> Result<PushOutcome, Error> {
    if held.digests.sha256 != metadata.digests.sha256 {
        return Err(Error::InvalidArgument(format!(
            "the target holds another backup named {} (SHA-256 {}, this one's is {}); \
             nothing was overwritten",
            metadata.filename, held.digests.sha256, metadata.digests.sha256
        )));
    }
    Ok(PushOutcome {
        pushed: remote_backup(target, held),
        uploaded: false,
    })
}

/// What differs between a manifest and the object downloaded for it.
fn differences(manifest: &Manifest, download: &Download) -> Vec<String> {
    let mut problems = Vec::new();
    if download.stored_length != manifest.stored_length
        || download.stored_sha256 != manifest.stored_sha256
    {
        problems.push(format!(
            "the stored object differs: recorded {} bytes with SHA-256 {}, received {} bytes \
             with SHA-256 {}",
            manifest.stored_length,
            manifest.stored_sha256,
            download.stored_length,
            download.stored_sha256
        ));
    }
    if download.length != manifest.length {
        problems.push(format!(
            "length differs: recorded {} bytes, decoded {} bytes",
            manifest.length, download.length
        ));
    }
    for (digest, recorded, actual) in [
        ("MD5", &manifest.digests.md5, &download.digests.md5),
        ("SHA-1", &manifest.digests.sha1, &download.digests.sha1),
        (
            "SHA-256",
            &manifest.digests.sha256,
            &download.digests.sha256,
        ),
    ] {
        if recorded != actual {
            problems.push(format!(
                "{digest} differs: recorded {recorded}, decoded {actual}"
            ));
        }
    }
    problems
}

/// A manifest as the interface shows it.
fn remote_backup(target: &str, manifest: Manifest) -> RemoteBackup {
    let pushed: Datetime = manifest.pushed;
    let stat = FileStat {
        length: manifest.length,
        created: Some(manifest.created),
        modified: pushed,
        accessed: pushed,
    };
    let metadata = Metadata {
        filename: manifest.filename,
        length: manifest.length,
        digests: manifest.digests,
        created: manifest.created,
        birth: None,
        origin: manifest.origin,
        last_verification: None,
        last_drill: None,
    };
    RemoteBackup {
        target: target.to_owned(),
        backup: backup_file(metadata, &stat),
        key: manifest.key,
        encoding: manifest.encoding,
        stored_length: manifest.stored_length,
        stored_sha256: manifest.stored_sha256,
        pushed_utc: pushed,
    }
}

#[cfg(test)]
mod tests;
