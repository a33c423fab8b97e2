/** How counts and kinds read in messages: "1 branch", "3 branches", "an http agent". */

/** `n` with the word for one or for many. */
export function counted(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The word with "a" or "an" before it, as it is spoken (an http, an openai, a script). */
export function withArticle(word: string): string {
  // Letters spoken with a vowel sound first (h as "aitch", ...), and words starting with a vowel.
  const vowelSound = /^[aeiou]/i.test(word) || /^(http|html|mcp|sqs|s3|sns|rest)\b/i.test(word);
  return `${vowelSound ? 'an' : 'a'} ${word}`;
}
