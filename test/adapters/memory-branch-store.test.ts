import { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import { describeBranchStoreConformance, describeBranchStorePages, describeBranchStoreRunKeys } from './branch-store-conformance';

describeBranchStoreConformance('MemoryBranchStore', (meter) => new MemoryBranchStore({ meter }));
describeBranchStorePages('MemoryBranchStore', (meter) => new MemoryBranchStore({ meter }));
describeBranchStoreRunKeys('MemoryBranchStore', (meter) => new MemoryBranchStore({ meter }));
