//! Searching: which rooms a person's search looks in, and its answer.
//!
//! The hub alone knows who may see what, so it makes the list of rooms to search when
//! the request comes (public rooms, and for an account the private rooms and direct
//! conversations it is a member of; a guest's, public rooms only), narrows it by the
//! query's `in:` filters, and hands it with the query to a reader thread: a search reads
//! the store like a page of history, off the hub's thread, counted with the connection's
//! pages in flight. When the answer comes back the rule is applied again, so a hit from a
//! room the person left or was removed from meanwhile is dropped rather than sent.

use confab_shared::{ErrorCode, RoomKind, ServerMsg, limits};

use super::{ConnId, Hub, Refusal, reads::Busy};
use crate::{
    search::query::Query,
    store::{SearchPage, SearchRequest, Store},
};

/// One search, on its way to a reader thread.
#[derive(Debug, Clone)]
pub struct Search {
    pub conn: ConnId,
    /// The query as typed, and the page asked for: repeated in the answer.
    pub text: String,
    pub before: Option<u64>,
    pub request: SearchRequest,
}

/// A search's answer, on its way back to the hub.
#[derive(Debug)]
pub struct SearchDone {
    pub search: Search,
    pub result: Result<SearchPage, String>,
}

impl Search {
    pub fn run(self, store: &mut dyn Store) -> SearchDone {
        let result = store.search(&self.request).map_err(|e| e.to_string());
        SearchDone {
            search: self,
            result,
        }
    }
}

impl Hub {
    /// Asks a reader thread for a page of results of `query` over the rooms the
    /// connection's person may see.
    pub(super) fn search(
        &mut self,
        id: ConnId,
        text: String,
        query: Query,
        before: Option<u64>,
    ) -> Result<(), Refusal> {
        self.check_reads_in_flight(id)?;
        let mut rooms = self.searchable_rooms(id);
        if !query.rooms.is_empty() {
            let me = self.conns.get(&id).and_then(|c| c.username());
            rooms.retain(|name| {
                let info = self.room_info(name, &self.rooms[name.as_str()], me);
                query.rooms.iter().any(|wanted| {
                    *wanted == info.name
                        || wanted.eq_ignore_ascii_case(&info.title)
                        || info
                            .peer
                            .as_ref()
                            .is_some_and(|p| p.user.eq_ignore_ascii_case(wanted))
                })
            });
            if rooms.is_empty() {
                // The same answer whether the room does not exist or may not be seen.
                return Err(Refusal::new(
                    ErrorCode::InvalidQuery,
                    format!("in: names no room you can see ({})", query.rooms.join(", ")),
                ));
            }
        }
        let search = Search {
            conn: id,
            text,
            before,
            request: SearchRequest {
                terms: query.terms,
                rooms,
                from: query.from,
                since_ms: query.since_ms,
                until_ms: query.until_ms,
                before,
                limit: limits::SEARCH_PAGE,
                budget: self.settings.search_budget,
            },
        };
        self.dispatch(super::reads::Job::Search(Box::new(search)))
            .map_err(|Busy| {
                Refusal::new(
                    ErrorCode::Unavailable,
                    "the server is busy reading; retry the search shortly",
                )
            })?;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.history_reads += 1;
        }
        Ok(())
    }

    /// The rooms the connection's person may search now: the access rule, and public
    /// rooms only for a guest.
    fn searchable_rooms(&self, id: ConnId) -> Vec<String> {
        let Some(conn) = self.conns.get(&id) else {
            return Vec::new();
        };
        let Some(me) = conn.username() else {
            return Vec::new();
        };
        let guest = conn.is_guest();
        self.rooms
            .iter()
            .filter(|(_, r)| {
                if guest {
                    r.kind == RoomKind::Public
                } else {
                    r.visible_to(me)
                }
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Answers a search, keeping only hits from rooms the person may still see.
    pub(super) fn finish_search(&mut self, SearchDone { search, result }: SearchDone) {
        let id = search.conn;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.history_reads = conn.history_reads.saturating_sub(1);
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                tracing::error!("searching: {e}");
                let refusal = Refusal::new(
                    ErrorCode::Unavailable,
                    "search is unavailable right now; retry",
                );
                self.reply(id, &refusal.into_msg());
                return;
            }
        };
        if page.slow && page.hits.is_empty() {
            let refusal = Refusal::new(
                ErrorCode::InvalidQuery,
                "this search takes too long: add a word, or narrow it with in:, from: or a date",
            );
            self.reply(id, &refusal.into_msg());
            return;
        }
        let visible = self.searchable_rooms(id);
        let hits = page
            .hits
            .into_iter()
            .filter(|h| visible.contains(&h.message.room))
            .collect();
        self.reply(
            id,
            &ServerMsg::SearchResults {
                query: search.text,
                before: search.before,
                hits,
                more: page.more,
            },
        );
    }
}
