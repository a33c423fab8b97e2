/** test/support/large-reader-agent.mjs: a lambda or http agent that reads its values passed by reference. */
export declare function handler(request: unknown): Promise<unknown>;
