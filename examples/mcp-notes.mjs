// A small MCP server for examples/tools.yaml, over stdio: one tool, `search_notes`, that finds
// field notes by keyword. Start it yourself with `node examples/mcp-notes.mjs` (it then waits for
// an MCP client on stdin); branch-spawner starts it for the agents that list it under `tools:`.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const NOTES = [
  'running cost: in a mild winter the heat pump used 2,900 kWh where the old boiler burned 11,000 kWh of gas.',
  'installation: the heat pump needed larger radiators in two rooms; the boiler swap took one day.',
  'lifetime: the neighbour replaced a 12-year-old boiler; the heat pump maker gives a 10-year warranty.',
];

const server = new McpServer({ name: 'notes', version: '1.0.0' });
server.registerTool(
  'search_notes',
  {
    description: 'Find field notes about home heating that mention a keyword.',
    inputSchema: { query: z.string().describe('a keyword, e.g. "running cost"') },
  },
  async ({ query }) => {
    const found = NOTES.filter((note) => note.toLowerCase().includes(query.toLowerCase()));
    return { content: [{ type: 'text', text: found.length ? found.join('\n') : `no notes mention "${query}"` }] };
  },
);
await server.connect(new StdioServerTransport());
