import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import { describeBranchStoreConformance } from './branch-store-conformance';

describeBranchStoreConformance('MemoryBranchStore', (meter) => new MemoryBranchStore({ meter }));
