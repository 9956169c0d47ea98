"""The GraphiQL page: Strawberry's, with the Authorization header also sent on websockets.

GraphiQL's own fetcher sends the headers box over HTTP only, so subscriptions
would reach the server without a token. Here the headers box also becomes the
`connection_init` payload, and the box starts with a hint for the header.
"""

from __future__ import annotations

from functools import cache

from strawberry.http.ides import get_graphql_ide_html

_STOCK_FETCHER = """      const fetcher = GraphiQL.createFetcher({
        url: fetchURL,
        headers: defaultHeaders,
        subscriptionUrl,
      });"""

_FETCHER_WITH_WS_AUTH = """      // One fetcher per headers value: the headers box is sent over HTTP and as the
      // websocket connection_init payload, so subscriptions are authenticated too.
      const fetchers = new Map();
      function fetcher(graphQLParams, opts) {
        const headers = (opts && opts.headers) || {};
        const key = JSON.stringify(headers);
        if (!fetchers.has(key)) {
          fetchers.set(key, GraphiQL.createFetcher({
            url: fetchURL,
            headers: defaultHeaders,
            subscriptionUrl,
            wsConnectionParams: headers,
          }));
        }
        return fetchers.get(key)(graphQLParams, opts);
      }"""

_STOCK_HEADERS = "const [headers, setHeaders] = React.useState(parameters.headers);"
_HEADERS_WITH_HINT = (
    "const [headers, setHeaders] = React.useState(parameters.headers || "
    '\'{\\n  "Authorization": "Bearer PASTE-THE-TOKEN-PRINTED-BY-make-run-OR-agno-graphql-token"\\n}\');'
)


@cache
def graphiql_page() -> str:
    page = get_graphql_ide_html("graphiql")
    if _STOCK_FETCHER not in page or _STOCK_HEADERS not in page:
        return page  # a Strawberry release changed the page; it still works for queries
    return page.replace(_STOCK_FETCHER, _FETCHER_WITH_WS_AUTH).replace(_STOCK_HEADERS, _HEADERS_WITH_HINT)
