//! The steps of a provider batch that differ for Anthropic's Message Batches
//! (`client::message_batches`): a part is created in one request that carries its requests (no
//! upload); a create whose answer was lost cannot be found again, since a batch carries no
//! metadata; whether a batch can be a part's is judged from its request count and creation time;
//! and the results come from the batch's `results_url`.

use super::ledger::{self, Ledger, Part, Place, Step};
use crate::client::ApiError;
use crate::client::batch_api::{Batch, BatchApi};
use crate::error::Error;

/// How far before the ledger's creation a batch may say it was created (clocks differ).
const CLOCK_SKEW_SECS: u64 = 86_400;

/// Create every part not yet created, recording each step before and after it. A create the
/// server answered with an error created nothing (the step goes back to pending); one whose
/// answer was lost stops the submission with what to check.
pub(super) async fn submit_parts(
    api: &BatchApi,
    place: &Place,
    ledger: &mut Ledger,
) -> Result<(), Error> {
    for i in 0..ledger.parts.len() {
        if ledger.parts[i].batch_id.is_some() {
            continue;
        }
        let number = ledger.parts[i].part;
        if ledger.parts[i].create == Step::Started {
            return Err(Error::input(
                format!(
                    "batch `{}`: part {number}: the answer to creating its Message Batch was lost, and Anthropic's batches carry no metadata to find it by",
                    ledger.name
                ),
                format!(
                    "look for it in the Anthropic Console (or `GET /v1/messages/batches`): if none holds its {} requests, remove `{}` and submit again; nothing else was created",
                    ledger.parts[i].requests,
                    place.file.display()
                ),
            ));
        }
        ledger.parts[i].create = Step::Started;
        place.save(ledger)?;
        let path = place.path(&ledger.parts[i].input);
        let file = ledger::open_state_file(&path).map_err(|e| {
            Error::input(
                format!("cannot send `{}`: {e}", path.display()),
                "qwen sends only the part files it wrote; remove the ledger and submit again",
            )
        })?;
        let batch = match api.create_message_batch(file, &path).await {
            Ok(batch) => batch,
            Err(e) => {
                if matches!(e, ApiError::Http { .. }) {
                    // The server answered with an error: no batch was created.
                    ledger.parts[i].create = Step::Pending;
                    place.save(ledger)?;
                }
                return Err(e.into());
            }
        };
        let metadata = ledger.metadata(number);
        super::apply(api, &mut ledger.parts[i], &metadata, &batch)?;
        ledger.parts[i].create = Step::Done;
        place.save(ledger)?;
        if place.made_by_qwen() {
            let _ = std::fs::remove_file(place.path(&ledger.parts[i].input));
        }
    }
    Ok(())
}

/// Whether `batch` can be the batch of `part`. Anthropic's batches carry no metadata, so nothing
/// proves it; what is checked is that it holds exactly the part's number of requests and was not
/// created long before the ledger.
pub(super) fn may_be_ours(ledger: &Ledger, part: &Part, batch: &Batch) -> bool {
    batch
        .request_counts
        .is_some_and(|c| c.total == part.requests)
        && batch
            .created_at
            .is_some_and(|t| t.saturating_add(CLOCK_SKEW_SECS) >= ledger.created_at)
}

/// Download the results of every part not downloaded yet (to a temporary name, then renamed).
pub(super) async fn download_all(
    api: &BatchApi,
    place: &Place,
    ledger: &mut Ledger,
) -> Result<(), Error> {
    for i in 0..ledger.parts.len() {
        let number = ledger.parts[i].part;
        let have = ledger.parts[i].output.as_ref().is_some_and(|rel| {
            std::fs::symlink_metadata(place.path(rel)).is_ok_and(|m| m.is_file())
        });
        let Some(id) = ledger.parts[i].batch_id.clone().filter(|_| !have) else {
            continue;
        };
        let Some(batch) = super::owned_batch(api, ledger, &ledger.parts[i], &id).await? else {
            return Err(super::not_ours(number, &id));
        };
        ledger.parts[i].download = Step::Started;
        place.save(ledger)?;
        let rel = ledger::part_file(number, "output");
        let partial = place.path(&format!("{rel}.download"));
        if std::fs::symlink_metadata(&place.dir).is_err() {
            place.fresh_dir()?;
        }
        api.download_results(&batch, &partial, super::max_download(&ledger.parts[i]))
            .await?;
        std::fs::rename(&partial, place.path(&rel))
            .map_err(|e| Error::file("rename", &partial, e))?;
        ledger.parts[i].output = Some(rel);
        ledger.parts[i].download = Step::Done;
        place.save(ledger)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::batch_api::RequestCounts;

    #[test]
    fn a_batch_is_taken_as_a_parts_only_with_its_count_and_a_plausible_time() {
        let ledger = Ledger {
            created_at: 1_000_000,
            ..Ledger::default()
        };
        let part = Part {
            requests: 3,
            ..Part::default()
        };
        let batch = |total: u64, created: Option<u64>| Batch {
            request_counts: Some(RequestCounts {
                total,
                ..RequestCounts::default()
            }),
            created_at: created,
            ..Batch::default()
        };
        let cases = [
            (batch(3, Some(1_000_010)), true),
            (batch(3, Some(1_000_000 - CLOCK_SKEW_SECS)), true),
            (batch(4, Some(1_000_010)), false),
            (batch(3, Some(1_000_000 - CLOCK_SKEW_SECS - 1)), false),
            (batch(3, None), false),
        ];
        for (b, want) in cases {
            assert_eq!(may_be_ours(&ledger, &part, &b), want, "{b:?}");
        }
    }
}
