/**
 * The list routes' pages (`limit`, `cursor`): the page sizes, and the cursor, an opaque string
 * that carries where the next page starts (the store's position: the last key read). Clients
 * only pass back what they were given.
 */
import { ValidationError } from './errors';

/** Items of a page when the request names no `limit`, and the most it may name. */
export const DEFAULT_PAGE_LIMIT = 1_000;
export const MAX_PAGE_LIMIT = 1_000;
/**
 * Bytes of JSON a page holds at most, whatever its `limit`: under Lambda's 6 MB response (API
 * Gateway takes 10 MB) with room for the envelope. A page is cut short there; its cursor goes on.
 */
export const PAGE_MAX_BYTES = 5 * 1024 * 1024;

const VERSION = 'p1';
const MAX_CURSOR_CHARS = 2_048;

/** The cursor of a page that ends after `position`. */
export function encodeCursor(position: string): string {
  return toBase64Url(`${VERSION}:${position}`);
}

/** The position in `cursor`; a ValidationError naming `cursor` for anything this API did not give. */
export function decodeCursor(cursor: string, isPosition: (position: string) => boolean): string {
  const refused = () => new ValidationError('cursor: not a cursor this API gave (pass the `cursor` of the previous page)', 'cursor');
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw refused();
  let text: string;
  try {
    text = fromBase64Url(cursor);
  } catch {
    throw refused();
  }
  if (!text.startsWith(`${VERSION}:`)) throw refused();
  const position = text.slice(VERSION.length + 1);
  if (!isPosition(position)) throw refused();
  return position;
}

/** A page's `limit` from a query string: the default when absent, else 1..max (DEFAULT_PAGE_LIMIT and MAX_PAGE_LIMIT unless a route names its own). */
export function pageLimit(value: string | undefined, bounds: { defaultLimit: number; max: number } = { defaultLimit: DEFAULT_PAGE_LIMIT, max: MAX_PAGE_LIMIT }): number {
  if (value === undefined) return bounds.defaultLimit;
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > bounds.max) {
    throw new ValidationError(`limit: must be an integer from 1 to ${bounds.max}, got ${JSON.stringify(value)}`, 'limit');
  }
  return limit;
}

function toBase64Url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(value: string): string {
  const binary = atob(value.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}
