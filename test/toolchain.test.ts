import { describe, expect, it } from 'vitest';

describe('toolchain', () => {
  it('runs on the Node 22 that npm install put in node_modules', () => {
    expect(process.version).toMatch(/^v22\./);
    expect(process.execPath).toContain('node_modules');
  });
});
