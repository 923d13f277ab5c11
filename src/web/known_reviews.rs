//! The reviews a time-travel form offers as points to travel to ("as known at the review as of
//! 30 June 2019"): the newest stored reviews, read again only once a review has been applied
//! since they were read, so a page does not read review reports on each request.

use super::form::{choices, Choice, Field};
use super::words;
use crate::api::{blocking, ApiError, Caller};
use crate::app::App;
use crate::queries::{self, ReviewMark};
use std::sync::{Arc, Mutex};

/// How many of the newest reviews are kept to choose from, and how many a form offers (of
/// those the caller may see).
const KEPT: usize = 200;
const OFFERED: usize = 20;

#[derive(Default)]
pub struct KnownReviews {
    /// The store's `reviews_applied` when the reviews were read, and what the forms offer.
    kept: Mutex<Option<(u64, Arc<Vec<Offered>>)>>,
}

/// A review as a form offers it, its words ready.
struct Offered {
    seq: u64,
    country: Option<crate::domain::ids::Country>,
    value: String,
    label: String,
}

impl KnownReviews {
    async fn marks(&self, app: &Arc<App>) -> Result<Arc<Vec<Offered>>, ApiError> {
        // Read before the marks: a review applied meanwhile moves it on, and the next page
        // reads them again.
        let applied = app.store.reviews_applied();
        if let Some((at, marks)) = &*self.kept.lock().unwrap_or_else(|e| e.into_inner()) {
            if *at == applied {
                return Ok(marks.clone());
            }
        }
        let reader = app.clone();
        let marks = blocking(move || Ok(queries::review_marks(&reader.store, KEPT)?)).await?;
        let marks: Arc<Vec<Offered>> = Arc::new(
            marks
                .into_iter()
                .map(|mark| Offered {
                    label: label(&mark),
                    value: mark.until_seq.to_string(),
                    seq: mark.seq,
                    country: mark.country,
                })
                .collect(),
        );
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = Some((applied, marks.clone()));
        Ok(marks)
    }
}

/// The choices of a form's "as known at a review" field (`until_seq`) for `caller`: the newest
/// durable reviews of all countries or of a country it sees, the one asked selected; a log
/// position asked that no review offered names is offered as itself.
pub async fn review_choices(
    app: &Arc<App>,
    caller: &Caller,
    asked: &Field,
) -> Result<Vec<Choice>, ApiError> {
    let marks = app.known_reviews.marks(app).await?;
    let durable = app.durable_seq();
    let shown = marks
        .iter()
        .filter(|mark| mark.seq <= durable && mark.country.as_ref().is_none_or(|c| caller.sees(c)))
        .take(OFFERED)
        .map(|mark| (mark.value.clone(), mark.label.clone()));
    let mut offered = choices(asked, shown);
    // Two reviews at one log position are one point in time: the first is the one selected.
    let mut seen = false;
    for choice in &mut offered {
        if choice.selected {
            choice.selected = !seen;
            seen = true;
        }
    }
    if !asked.value.is_empty() && asked.error.is_none() && !seen {
        offered.push(Choice {
            value: asked.value.clone(),
            label: format!("log position {}", asked.value),
            selected: true,
        });
    }
    Ok(offered)
}

fn label(mark: &ReviewMark) -> String {
    let scope = mark
        .country
        .as_ref()
        .map_or("all countries".to_owned(), ToString::to_string);
    format!(
        "the review as of {} ({scope}), log position {}",
        words::date(mark.as_of),
        mark.until_seq
    )
}
