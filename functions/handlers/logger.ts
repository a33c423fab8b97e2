/** Structured JSON logs with run and branch ids (Powertools Logger). */
import { Logger } from '@aws-lambda-powertools/logger';

export function createLogger(serviceName: string, logLevel?: string): Logger {
  const level = (logLevel ?? process.env.LOG_LEVEL ?? (process.env.AWS_LAMBDA_FUNCTION_NAME ? 'INFO' : 'SILENT')).toUpperCase();
  return new Logger({ serviceName, logLevel: level as 'INFO' });
}

export type { Logger };
