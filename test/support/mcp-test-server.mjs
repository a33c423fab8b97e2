// An MCP stdio server for the tool tests: `echo` answers at once; `hang` never answers (it
// ignores cancellation too), so only the caller's timeout or abort can end a call to it.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'test-tools', version: '1.0.0' });
server.registerTool('echo', { description: 'Echoes its text.', inputSchema: { text: z.string() } }, async ({ text }) => ({
  content: [{ type: 'text', text: `echo: ${text}` }],
}));
server.registerTool('hang', { description: 'Never answers.', inputSchema: {} }, () => new Promise(() => {}));
await server.connect(new StdioServerTransport());
