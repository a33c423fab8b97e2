/** CDK entry (cdk.json): `npx cdk deploy -c team=<name>`, or every team with no `-c team`. */
import { App } from 'aws-cdk-lib';
import { buildApp } from './build-app';

buildApp(new App());
