/**
 * The names and ARNs CloudFormation would give the stack's resources that no engine creates
 * (event buses, roles, functions, state machines, log groups, keys, topics, rules, the REST API,
 * its resources and stage), so that every reference to them in the template resolves.
 */
import type { RehearsalTemplate } from './template';

/** The REST API's id (every execute-api ARN names it). */
const API_ID = 'rehearsal0api';

export interface PhysicalIds {
  /** Each event bus by its name and its ARN (and `default`): the name PutEvents routes to. */
  busNames: Map<string, string>;
  /** The REST API's id; `rehearsal` when the template has none. */
  apiId: string;
}

export function assignPhysicalIds(t: RehearsalTemplate): PhysicalIds {
  const busNames = new Map<string, string>();
  for (const [id, r] of t.ofType('AWS::Events::EventBus')) {
    const name = String(r.Properties?.Name ?? t.generatedName(id));
    const arn = t.arn('events', `event-bus/${name}`);
    t.setPhysical(id, { ref: name, attributes: { Arn: arn, Name: name } });
    busNames.set(name, name);
    busNames.set(arn, name);
  }
  busNames.set('default', 'default');
  for (const [id, r] of t.ofType('AWS::IAM::Role')) {
    const name = String(r.Properties?.RoleName ?? t.generatedName(id));
    t.setPhysical(id, { ref: name, attributes: { Arn: `arn:${t.env.partition}:iam::${t.env.account}:role/${name}`, RoleId: id } });
  }
  for (const [id, r] of t.ofType('AWS::Lambda::Function')) {
    const name = String(r.Properties?.FunctionName ?? t.generatedName(id));
    t.setPhysical(id, { ref: name, attributes: { Arn: t.arn('lambda', `function:${name}`) } });
  }
  for (const [id, r] of t.ofType('AWS::StepFunctions::StateMachine')) {
    const name = String(r.Properties?.StateMachineName ?? t.generatedName(id, 80));
    const arn = t.arn('states', `stateMachine:${name}`);
    t.setPhysical(id, { ref: arn, attributes: { Arn: arn, Name: name } });
  }
  for (const [id, r] of t.ofType('AWS::Logs::LogGroup')) {
    const name = String(r.Properties?.LogGroupName ?? t.generatedName(id, 512));
    t.setPhysical(id, { ref: name, attributes: { Arn: t.arn('logs', `log-group:${name}:*`) } });
  }
  for (const [id] of t.ofType('AWS::KMS::Key')) {
    t.setPhysical(id, { ref: id, attributes: { Arn: t.arn('kms', `key/${id}`), KeyId: id } });
  }
  for (const [id] of t.ofType('AWS::SNS::Topic')) {
    const arn = t.arn('sns', t.generatedName(id, 256));
    t.setPhysical(id, { ref: arn, attributes: { TopicArn: arn, TopicName: t.generatedName(id, 256) } });
  }
  for (const [id, r] of t.ofType('AWS::Events::Rule')) {
    const bus = t.resolve(r.Properties?.EventBusName ?? 'default');
    const name = String(r.Properties?.Name ?? t.generatedName(id));
    const arn = t.arn('events', bus === 'default' ? `rule/${name}` : `rule/${bus}/${name}`);
    t.setPhysical(id, { ref: name, attributes: { Arn: arn } });
  }
  let apiId = 'rehearsal';
  const apis = t.ofType('AWS::ApiGateway::RestApi');
  if (apis.length) {
    const [apiLogicalId] = apis[0];
    apiId = API_ID;
    t.setPhysical(apiLogicalId, { ref: apiId, attributes: { RootResourceId: 'root' } });
  }
  for (const [id] of t.ofType('AWS::ApiGateway::Resource')) t.setPhysical(id, { ref: id, attributes: { ResourceId: id } });
  for (const [id, r] of t.ofType('AWS::ApiGateway::Stage')) t.setPhysical(id, { ref: String(r.Properties?.StageName ?? id), attributes: {} });
  return { busNames, apiId };
}
