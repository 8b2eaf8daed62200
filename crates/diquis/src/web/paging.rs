//! Paging of lists (`?page=1&pageSize=20`), shared by the API and the pages: 1-based pages, a
//! default size, and a cap so no request reads or sends an unbounded list.

use std::collections::HashMap;

use serde::Serialize;

/// Page size when the request names none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// The largest page size served; a larger `pageSize` is lowered to it.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: u32,
    /// Rows per page, 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, page_size: DEFAULT_PAGE_SIZE }
    }
}

impl PageRequest {
    /// Reads `page` and `pageSize` (any case) from a query string's pairs; every problem is named.
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, Vec<String>> {
        let value = |name: &str| query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
        let mut problems = Vec::new();
        let mut number = |name: &str, default: u32| match value(name) {
            None | Some("") => default,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    problems.push(format!("'{name}' must be a whole number of at least 1; '{v}' is not."));
                    default
                }
            },
        };
        let page = number("page", 1);
        let page_size = number("pageSize", DEFAULT_PAGE_SIZE).min(MAX_PAGE_SIZE);
        if problems.is_empty() { Ok(Self { page, page_size }) } else { Err(problems) }
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.page_size)
    }

    /// Rows to read.
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }
}

/// Where a page sits in the whole list (.NET Diquis's `PaginationResponse` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// This page (1-based).
    pub current_page: u32,
    /// Rows per page.
    pub page_size: u32,
    /// Rows in the whole list.
    pub total_count: i64,
    /// Pages in the whole list (at least 1).
    pub total_pages: u32,
    /// Whether a previous page exists.
    pub has_previous_page: bool,
    /// Whether a next page exists.
    pub has_next_page: bool,
}

impl PageInfo {
    /// The position of `request` in a list of `total_count` rows.
    pub fn new(request: PageRequest, total_count: i64) -> Self {
        let size = i64::from(request.page_size);
        let total_pages = u32::try_from(((total_count + size - 1) / size).max(1)).unwrap_or(u32::MAX);
        Self {
            current_page: request.page,
            page_size: request.page_size,
            total_count,
            total_pages,
            has_previous_page: request.page > 1,
            has_next_page: request.page < total_pages,
        }
    }

    /// The query string of another page of the same size, e.g. `page=3&pageSize=20`.
    pub fn query_for(&self, page: u32) -> String {
        format!("page={page}&pageSize={}", self.page_size)
    }

    /// The address of another page of `path`, which may carry a query of its own
    /// (`/users?tenant=acme` gives `/users?tenant=acme&page=2&pageSize=20`).
    pub fn href(&self, path: &str, page: u32) -> String {
        let joint = if path.contains('?') { '&' } else { '?' };
        format!("{path}{joint}{}", self.query_for(page))
    }

    /// The previous page's number, if any (past the end: the last page).
    pub fn previous_page(&self) -> Option<u32> {
        self.has_previous_page.then(|| self.current_page.min(self.total_pages + 1) - 1)
    }

    /// An RFC 8288 `Link` header value with the `prev` and `next` pages of `path` (which may
    /// carry a query of its own), if any.
    pub fn link_header(&self, path: &str) -> Option<String> {
        let mut links = Vec::new();
        if let Some(prev) = self.previous_page() {
            links.push(format!("<{}>; rel=\"prev\"", self.href(path, prev)));
        }
        if self.has_next_page {
            links.push(format!("<{}>; rel=\"next\"", self.href(path, self.current_page + 1)));
        }
        (!links.is_empty()).then(|| links.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_cap_and_problems() {
        assert_eq!(PageRequest::from_query(&query(&[])).unwrap(), PageRequest { page: 1, page_size: DEFAULT_PAGE_SIZE });
        let r = PageRequest::from_query(&query(&[("page", "3"), ("pagesize", "10000")])).unwrap();
        assert_eq!((r.page, r.page_size, r.offset()), (3, MAX_PAGE_SIZE, 200));
        let problems = PageRequest::from_query(&query(&[("page", "0"), ("pageSize", "ten")])).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("'page'") && problems[1].starts_with("'pageSize'"), "{problems:?}");
    }

    #[test]
    fn position_and_links() {
        let info = PageInfo::new(PageRequest { page: 2, page_size: 10 }, 25);
        assert_eq!((info.total_pages, info.has_previous_page, info.has_next_page), (3, true, true));
        assert_eq!(
            info.link_header("/api/tenants").unwrap(),
            "</api/tenants?page=1&pageSize=10>; rel=\"prev\", </api/tenants?page=3&pageSize=10>; rel=\"next\""
        );
        let empty = PageInfo::new(PageRequest::default(), 0);
        assert_eq!((empty.total_pages, empty.has_next_page, empty.has_previous_page), (1, false, false));
        assert!(empty.link_header("/x").is_none());
        // Past the end: the previous link leads back to the last page.
        let past = PageInfo::new(PageRequest { page: 9, page_size: 10 }, 25);
        assert!(past.link_header("/x").unwrap().contains("page=3&pageSize=10>; rel=\"prev\""));
        // A path with a query of its own keeps it.
        assert_eq!(
            info.link_header("/api/users?tenant=acme").unwrap(),
            "</api/users?tenant=acme&page=1&pageSize=10>; rel=\"prev\", </api/users?tenant=acme&page=3&pageSize=10>; rel=\"next\""
        );
    }
}
