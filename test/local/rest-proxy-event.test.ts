import { describe, expect, it } from 'vitest';
import { API_METHODS } from '../../functions/handlers/api';
import { matchResource, restProxyEvent } from '../../local/rest-proxy-event';

const RESOURCES = [...new Set(API_METHODS.map((m) => m.split(' ')[1]))];

describe('matchResource: the resource API Gateway picks for a path', () => {
  it("reaches the deployed API's resources with their path parameters, URL-decoded; a trailing slash is the same path", () => {
    expect(matchResource(RESOURCES, '/runs')).toEqual({ resource: '/runs', pathParameters: null });
    expect(matchResource(RESOURCES, '/runs/')).toEqual({ resource: '/runs', pathParameters: null });
    expect(matchResource(RESOURCES, '/runs/r1/branches/root.0/result')).toEqual({
      resource: '/runs/{id}/branches/{branchId}/result',
      pathParameters: { id: 'r1', branchId: 'root.0' },
    });
    expect(matchResource(RESOURCES, '/runs/a%20b/callbacks/t%2F1')).toEqual({
      resource: '/runs/{id}/callbacks/{token}',
      pathParameters: { id: 'a b', token: 't/1' },
    });
  });

  it('prefers a literal segment to a variable, takes the rest for a greedy variable, and finds nothing for a path no resource has', () => {
    const resources = ['/{proxy+}', '/runs/{id}', '/runs/latest', '/runs/{id}/tree'];
    expect(matchResource(resources, '/runs/latest')).toEqual({ resource: '/runs/latest', pathParameters: null });
    expect(matchResource(resources, '/runs/r1')).toEqual({ resource: '/runs/{id}', pathParameters: { id: 'r1' } });
    expect(matchResource(resources, '/other/a/b')).toEqual({ resource: '/{proxy+}', pathParameters: { proxy: 'other/a/b' } });
    expect(matchResource(RESOURCES, '/runs/r1/nothing')).toBeUndefined();
    expect(matchResource(RESOURCES, '/runs//tree')).toBeUndefined();
    expect(matchResource(RESOURCES, '/')).toBeUndefined();
  });
});

describe('restProxyEvent: the REST API proxy event', () => {
  const stage = { accountId: '123456789012', apiId: 'abc', stage: 'v1', basePath: '/v1' };
  const request = {
    method: 'GET',
    path: '/runs/r1/tree',
    headers: { Host: ['abc.example'], 'User-Agent': ['cli/1'], 'X-Many': ['a', 'b'] },
    query: { format: ['ascii'], x: ['1', '2'] },
    body: '',
    sourceIp: '10.0.0.1',
  };
  const match = { resource: '/runs/{id}/tree', pathParameters: { id: 'r1' } };

  it('has the last value of a repeated header or parameter in the single-value maps, all of them in the multi-value ones; an empty body is null', () => {
    const event = restProxyEvent(request, stage, match);
    expect(event).toMatchObject({
      resource: '/runs/{id}/tree',
      path: '/runs/r1/tree',
      httpMethod: 'GET',
      headers: { Host: 'abc.example', 'User-Agent': 'cli/1', 'X-Many': 'b' },
      multiValueHeaders: { 'X-Many': ['a', 'b'] },
      queryStringParameters: { format: 'ascii', x: '2' },
      multiValueQueryStringParameters: { format: ['ascii'], x: ['1', '2'] },
      pathParameters: { id: 'r1' },
      stageVariables: null,
      body: null,
      isBase64Encoded: false,
    });
    expect(restProxyEvent({ ...request, query: {} }, stage, { resource: '/runs', pathParameters: null })).toMatchObject({
      queryStringParameters: null,
      multiValueQueryStringParameters: null,
      pathParameters: null,
    });
  });

  it('says in requestContext the stage, the path the client called (with the stage), the resource, and who was authenticated', () => {
    const event = restProxyEvent(request, stage, match, { identity: { userArn: 'arn:aws:iam::123456789012:user/op' } });
    expect(event.requestContext).toMatchObject({
      accountId: '123456789012',
      apiId: 'abc',
      stage: 'v1',
      path: '/v1/runs/r1/tree',
      resourcePath: '/runs/{id}/tree',
      httpMethod: 'GET',
      protocol: 'HTTP/1.1',
      domainName: 'abc.example',
      authorizer: null,
      identity: { sourceIp: '10.0.0.1', userAgent: 'cli/1', userArn: 'arn:aws:iam::123456789012:user/op', accessKey: null, cognitoIdentityId: null },
    });
    expect(event.requestContext.requestTime).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    const withClaims = restProxyEvent(request, { ...stage, basePath: '' }, match, { claims: { sub: 'u1' } });
    expect(withClaims.requestContext).toMatchObject({ path: '/runs/r1/tree', authorizer: { claims: { sub: 'u1' } } });
  });
});
