/** MemoryFanOut: the memory tier's fan-out, held to the same contract as the ASL on the engine. */
import { MemoryFanOut } from '../../adapters/memory/memory-fan-out';
import { describeFanOutConformance } from './fan-out-conformance';

describeFanOutConformance('in memory', ({ queue, tasks, onExecutionError }) => new MemoryFanOut(queue, tasks, onExecutionError));
