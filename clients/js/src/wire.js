// What a client sent and what it got back: a real fetch that records each exchange, for the tests that assert
// what went over the wire (persisted queries: the hash alone, the document once, GET or POST).
import { createHash } from "node:crypto";

/** SHA-256 in hex, as Apollo's PersistedQueryLink and urql's persistedExchange name a document. */
export const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const JSON_ANSWER = /^application\/(graphql-response\+)?json/;

/** The GraphQL parameters of a request: its JSON body (POST), or its URL's search parameters (GET). */
function paramsOf(url, init) {
  if (typeof init.body === "string") return JSON.parse(init.body);
  const params = Object.fromEntries(url.searchParams);
  for (const name of ["variables", "extensions"]) {
    if (params[name] !== undefined) params[name] = JSON.parse(params[name]);
  }
  return params;
}

/**
 * `fetch` for a client, the real one, with `exchanges`: each request as sent (method, URL, GraphQL `params`) and
 * its answer (status, headers, and the body when it is JSON; a stream is left to the client).
 */
export function recordingFetch() {
  const exchanges = [];
  async function recorded(input, init = {}) {
    const response = await fetch(input, init);
    const url = new URL(String(input));
    const contentType = response.headers.get("content-type") ?? "";
    exchanges.push({
      method: init.method ?? "GET",
      url,
      params: paramsOf(url, init),
      status: response.status,
      headers: response.headers,
      answer: JSON_ANSWER.test(contentType) ? await response.clone().json() : undefined,
    });
    return response;
  }
  return { fetch: recorded, exchanges };
}

/**
 * Each recorded request as persisted queries see it: its method, whether it carried the document, the hash it
 * named, and the error codes of its answer.
 */
export function persistedQueryWire(exchanges) {
  return exchanges.map(({ method, params, answer }) => ({
    method,
    document: typeof params.query === "string" && params.query !== "",
    sha256Hash: params.extensions?.persistedQuery?.sha256Hash,
    errors: (answer?.errors ?? []).map((error) => error.extensions?.code),
  }));
}

/** Whether an answer's Vary header names `header` (an HTTP cache keys what it keeps by it). */
export function variesBy(exchange, header) {
  const names = (exchange.headers.get("vary") ?? "").split(",");
  return names.some((name) => name.trim().toLowerCase() === header.toLowerCase());
}
