//! Searching messages: the query asked, the results shown and whether more follow.
//!
//! The server answers each `search` with `search_results` repeating its `query` and
//! `before`, so only the answer to the request made last is taken: one to a query the
//! person replaced meanwhile (or to a page asked for before it) is dropped, whenever it
//! comes. A refused query (`invalid_query`) is shown next to the box.

use std::rc::Rc;

use confab_shared::SearchHit;

use super::State;

/// See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// The results panel is open.
    pub open: bool,
    /// The query of the results shown, or on their way.
    pub query: String,
    /// The `before` of the last request for `query` (`None`: its first page).
    pub asked: Option<u64>,
    /// A request is on its way.
    pub busy: bool,
    /// An answer for `query` came: with no hits, that is "nothing found".
    pub answered: bool,
    /// The results so far, newest first. Shared: a state copy does not copy them.
    pub hits: Rc<Vec<SearchHit>>,
    /// Another page follows.
    pub more: bool,
    /// Why the query was refused, or the answer did not come.
    pub error: Option<String>,
}

/// What the search actions do (see `Action::Search`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchAction {
    /// A `search` was sent: a new query (`before` `None`), or the next page of the
    /// query shown.
    Asked {
        query: String,
        before: Option<u64>,
    },
    /// Show the results panel (with the results held, or the tips).
    Open,
    Close,
}

impl Search {
    /// The `before` that asks for the page after the results held.
    pub fn next_page(&self) -> Option<u64> {
        self.more
            .then(|| self.hits.last().map(|h| h.message.id))
            .flatten()
    }

    fn asked(&mut self, query: String, before: Option<u64>) {
        if before.is_none() || query != self.query {
            *self = Search {
                open: true,
                query,
                busy: true,
                ..Search::default()
            };
        } else {
            self.asked = before;
            self.busy = true;
            self.error = None;
        }
    }

    /// A page of results: taken only if it answers the last request.
    fn results(&mut self, query: &str, before: Option<u64>, hits: Vec<SearchHit>, more: bool) {
        if query != self.query || before != self.asked {
            return;
        }
        if before.is_none() {
            self.hits = Rc::new(hits);
        } else if !hits.is_empty() {
            let all = Rc::make_mut(&mut self.hits);
            // A page repeats nothing of the one before; if the index changed between
            // two pages, a hit seen already is not shown twice.
            let known: std::collections::BTreeSet<u64> = all.iter().map(|h| h.message.id).collect();
            all.extend(hits.into_iter().filter(|h| !known.contains(&h.message.id)));
        }
        self.more = more;
        self.busy = false;
        self.answered = true;
        self.error = None;
    }

    /// The server refused the query. Only a request on its way can be the one refused.
    fn refused(&mut self, message: String) {
        if self.busy {
            self.busy = false;
            self.error = Some(message);
        }
    }
}

impl State {
    pub(super) fn on_search(&mut self, action: SearchAction) {
        match action {
            SearchAction::Asked { query, before } => self.search.asked(query, before),
            SearchAction::Open => self.search.open = true,
            SearchAction::Close => self.search.open = false,
        }
    }

    pub(super) fn on_search_results(
        &mut self,
        query: &str,
        before: Option<u64>,
        hits: Vec<SearchHit>,
        more: bool,
    ) {
        self.search.results(query, before, hits, more);
    }

    pub(super) fn search_refused(&mut self, message: String) {
        self.search.refused(message);
    }

    /// The connection dropped: an answer on its way will not come.
    pub(super) fn search_interrupted(&mut self) {
        if self.search.busy {
            self.search.refused(
                "The connection dropped before the results came: search again.".to_owned(),
            );
        }
    }
}
