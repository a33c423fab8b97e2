/** LocalFanOutOrchestrator: the fan-out ASL run by aws-local-stepfunctions, held to the fan-out contract. */
import { LocalFanOutOrchestrator } from '../../../adapters/stepfunctions/local-fan-out';
import { describeFanOutConformance } from '../fan-out-conformance';

describeFanOutConformance('the ASL on aws-local-stepfunctions', (options) => new LocalFanOutOrchestrator(options));
