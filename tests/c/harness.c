/*
 * Calls every exported function of the C API, error paths included, so that `make memcheck` can
 * run it under valgrind: no leak, no invalid access. Exits non-zero when a result is wrong.
 *
 *   harness <origin URL serving fixture-jwks.json> <token signed by that key>
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "jwk_aggregator.h"

static int failures = 0, checks = 0;

#define EXPECT(cond, what)                                        \
  do {                                                            \
    checks++;                                                     \
    if (!(cond)) {                                                \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what); \
      failures++;                                                 \
    }                                                             \
  } while (0)

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

static JwkaAggregator *make(const char *settings, JwkaStatus want) {
  JwkaAggregator *agg = NULL;
  JwkaBuf err = {0};
  JwkaStatus st = jwka_aggregator_new(u8(settings), strlen(settings), &agg, &err);
  EXPECT(st == want, settings);
  EXPECT((st == JWKA_STATUS_OK) == (agg != NULL), "handle set only on success");
  EXPECT((st == JWKA_STATUS_INVALID_SETTINGS) == (err.len > 0), "error message only on invalid settings");
  jwka_buf_free(err);
  return agg;
}

static uint16_t serve(const JwkaAggregator *agg, const char *path) {
  JwkaHttpResponse resp;
  EXPECT(jwka_aggregator_serve(agg, u8(path), strlen(path), &resp) == JWKA_STATUS_OK, path);
  EXPECT(resp.content_type != NULL && strlen(resp.content_type) > 0, "content type");
  jwka_buf_free(resp.body);
  return resp.status;
}

static JwkaAuthOutcome check_as(const JwkaAuth *auth, const char *path, const char *authz, const char *cookie, int want_claims,
                                JwkaWait wait) {
  JwkaAuthResult res;
  JwkaBuf claims = {0};
  JwkaRequest req = {
      .method = {u8("GET"), 3},
      .path = {u8(path), strlen(path)},
      .authorization = {authz ? u8(authz) : NULL, authz ? strlen(authz) : 0},
      .cookies = {cookie ? u8(cookie) : NULL, cookie ? strlen(cookie) : 0},
      .header_names = {u8("Accept\nX_User"), 13},
  };
  JwkaStatus st = jwka_auth_check(auth, req, wait, &res, want_claims ? &claims : NULL);
  EXPECT(st == JWKA_STATUS_OK, "auth check status");
  if (want_claims && res.outcome == JWKA_AUTH_OUTCOME_ALLOW) EXPECT(claims.len > 0, "claims returned");
  /* The answer comes decided: a status and its challenge for a refusal, nothing otherwise. */
  int refused = res.outcome == JWKA_AUTH_OUTCOME_MISSING || res.outcome == JWKA_AUTH_OUTCOME_INVALID ||
                res.outcome == JWKA_AUTH_OUTCOME_FORBIDDEN;
  EXPECT(refused ? (res.status == 401 || res.status == 403) && res.challenge.len > 6 &&
                       memcmp(res.challenge.data, "Bearer", 6) == 0
                 : res.status == 0 && res.challenge.len == 0,
         "status and challenge");
  jwka_buf_free(res.reason);
  jwka_buf_free(res.headers);
  jwka_buf_free(res.challenge);
  jwka_buf_free(claims);
  return res.outcome;
}

static JwkaAuthOutcome check(const JwkaAuth *auth, const char *path, const char *authz, const char *cookie, int want_claims) {
  return check_as(auth, path, authz, cookie, want_claims, JWKA_WAIT_BLOCK);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <origin URL> <token>\n", argv[0]);
    return 2;
  }
  const char *origin = argv[1], *token = argv[2];

  EXPECT(jwka_abi_version() == JWKA_ABI_VERSION, "ABI version");
  JwkaStatus all[] = {JWKA_STATUS_OK, JWKA_STATUS_NULL_ARGUMENT, JWKA_STATUS_INVALID_SETTINGS,
                      JWKA_STATUS_EMPTY, JWKA_STATUS_CLOSED, JWKA_STATUS_PANIC};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) EXPECT(strlen(jwka_status_str(all[i])) > 0, "status name");

  /* Null and bad arguments. */
  JwkaAggregator *none = NULL;
  JwkaBuf err = {0};
  EXPECT(jwka_aggregator_new(NULL, 5, &none, &err) == JWKA_STATUS_NULL_ARGUMENT, "null settings");
  EXPECT(jwka_aggregator_new(u8("{}"), 2, NULL, NULL) == JWKA_STATUS_NULL_ARGUMENT, "null out");
  EXPECT(jwka_aggregator_new(NULL, 0, &none, &err) == JWKA_STATUS_INVALID_SETTINGS, "empty settings");
  /* Without an error buffer the message must not be allocated (it leaked once: found by make asan). */
  EXPECT(jwka_aggregator_new(u8("{}"), 2, &none, NULL) == JWKA_STATUS_INVALID_SETTINGS, "bad settings, no error buffer");
  EXPECT(jwka_settings_validate(u8("{}"), 2, NULL) == JWKA_STATUS_INVALID_SETTINGS, "validate, no error buffer");
  jwka_buf_free(err);
  make("{\"port\": 1, \"origins\": [\"\xff\xfe\"]}", JWKA_STATUS_INVALID_SETTINGS);
  make("{\"port\": 0, \"origins\": [\"https://a.example/k\"]}", JWKA_STATUS_INVALID_SETTINGS);
  make("{\"port\": 1, \"origins\": [\"https://a.example/k\"], \"ca_file\": \"/nonexistent\"}", JWKA_STATUS_INVALID_SETTINGS);
  make("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", JWKA_STATUS_INVALID_SETTINGS);
  EXPECT(jwka_aggregator_port(NULL) == 0, "port of null");
  JwkaHttpResponse r;
  EXPECT(jwka_aggregator_serve(NULL, u8("/"), 1, &r) == JWKA_STATUS_NULL_ARGUMENT, "serve null");
  JwkaLogLevel lvl;
  JwkaBuf msg;
  EXPECT(jwka_aggregator_next_log(NULL, 0, &lvl, &msg) == JWKA_STATUS_NULL_ARGUMENT, "log null");
  jwka_aggregator_close(NULL);
  jwka_aggregator_free(NULL);
  jwka_auth_free(NULL);
  JwkaBuf empty = {0};
  jwka_buf_free(empty);

  /* A working aggregator and checker. */
  char settings[1024];
  snprintf(settings, sizeof settings,
           "{\"port\": 9876, \"origins\": [\"%s\", \"http://127.0.0.1:1/down\"], \"timeout\": \"1s\"}", origin);
  JwkaAggregator *agg = make(settings, JWKA_STATUS_OK);
  if (!agg) return 1;
  EXPECT(jwka_aggregator_port(agg) == 9876, "port");
  EXPECT(serve(agg, "/") == 200, "merged set");
  EXPECT(serve(agg, "/__health") == 207, "health with one origin down");
  EXPECT(serve(agg, "/metrics") == 200, "metrics");
  EXPECT(serve(agg, "/nope") == 404, "unknown path");
  EXPECT(jwka_aggregator_serve(agg, NULL, 0, &r) == JWKA_STATUS_NULL_ARGUMENT, "null path");

  JwkaAuth *auth = NULL;
  const char *bad_auth = "{\"rules\": [{\"path\": \"/x\"}]}";
  EXPECT(jwka_auth_new(agg, u8(bad_auth), strlen(bad_auth), &auth, &err) == JWKA_STATUS_INVALID_SETTINGS, "bad auth");
  EXPECT(auth == NULL && err.len > 0, "auth error message");
  jwka_buf_free(err);
  EXPECT(jwka_auth_new(NULL, u8("{}"), 2, &auth, NULL) == JWKA_STATUS_NULL_ARGUMENT, "auth null aggregator");
  EXPECT(jwka_auth_new(agg, u8(bad_auth), strlen(bad_auth), &auth, NULL) == JWKA_STATUS_INVALID_SETTINGS, "bad auth, no error buffer");
  const char *rules = "{\"rules\": [{\"paths\": [\"/api/{id}\"], \"audience\": [\"api\"], \"scopes\": [\"read\"],"
                      " \"propagate_claims\": [[\"sub\", \"X-User\"]]}], \"unknown_kid_wait\": \"200ms\"}";
  EXPECT(jwka_auth_new(agg, u8(rules), strlen(rules), &auth, &err) == JWKA_STATUS_OK, "auth");
  jwka_buf_free(err);

  char bearer[4096];
  snprintf(bearer, sizeof bearer, "Bearer %s", token);
  char cookie[4096];
  snprintf(cookie, sizeof cookie, "a=b; access_token=%s", token);
  for (int i = 0; i < 3; i++) { /* first a verification, then cache hits */
    EXPECT(check(auth, "/api/1", bearer, NULL, 1) == JWKA_AUTH_OUTCOME_ALLOW, "good token");
    EXPECT(check(auth, "/api/1", NULL, cookie, 0) == JWKA_AUTH_OUTCOME_ALLOW, "cookie token");
  }
  EXPECT(check(auth, "/public", NULL, NULL, 1) == JWKA_AUTH_OUTCOME_UNPROTECTED, "unprotected");
  EXPECT(check(auth, "/api/1", NULL, NULL, 1) == JWKA_AUTH_OUTCOME_MISSING, "missing");
  EXPECT(check(auth, "/api/1", "Bearer a.b.c", NULL, 1) == JWKA_AUTH_OUTCOME_INVALID, "garbage token");
  EXPECT(check(auth, "/api/1", "Bearer \xff\xfe.\x01.\x00", NULL, 1) == JWKA_AUTH_OUTCOME_INVALID, "binary token");
  char forged[4096];
  snprintf(forged, sizeof forged, "Bearer %sA", token);
  EXPECT(check(auth, "/api/1", forged, NULL, 1) == JWKA_AUTH_OUTCOME_INVALID, "bad signature");
  /* Unknown kid: header {"alg":"EdDSA","kid":"nobody"} triggers a bounded refetch. Asked the
     shim's way it is PENDING while the refetch runs (or already refused, if it was that fast),
     the keys socket turns readable when it ends, and EXPIRED decides with what there is. */
  const char *nobody = "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6Im5vYm9keSJ9.e30.AAAA";
  int fd = jwka_aggregator_keys_fd(agg);
  EXPECT(fd >= 0, "keys socket");
  EXPECT(jwka_aggregator_keys_fd(NULL) == -1, "keys socket of null");
  EXPECT(jwka_aggregator_wake_fd(NULL) == -1, "log socket of null");
  JwkaAuthOutcome o = check_as(auth, "/api/1", nobody, NULL, 0, JWKA_WAIT_PENDING);
  EXPECT(o == JWKA_AUTH_OUTCOME_PENDING || o == JWKA_AUTH_OUTCOME_INVALID, "unknown kid, pending");
  if (o == JWKA_AUTH_OUTCOME_PENDING) {
    struct pollfd p = {fd, POLLIN, 0};
    EXPECT(poll(&p, 1, 10000) == 1, "woken when the refetch ends");
    uint64_t ids[4];
    size_t n = 99;
    EXPECT(jwka_aggregator_next_ready(agg, ids, 4, &n) == JWKA_STATUS_OK && n == 1, "the ended fetch's source named");
  }
  size_t count = 0;
  EXPECT(jwka_aggregator_next_ready(NULL, NULL, 0, &count) == JWKA_STATUS_NULL_ARGUMENT, "next ready of null");
  EXPECT(jwka_aggregator_next_ready(agg, NULL, 4, &count) == JWKA_STATUS_NULL_ARGUMENT, "next ready without room");
  EXPECT(check_as(auth, "/api/1", nobody, NULL, 0, JWKA_WAIT_EXPIRED) == JWKA_AUTH_OUTCOME_INVALID, "unknown kid, expired");
  close(fd);
  EXPECT(check(auth, "/api/1", nobody, NULL, 1) == JWKA_AUTH_OUTCOME_INVALID, "unknown kid");
  char *huge = malloc(70000);
  memset(huge, 'A', 69999);
  huge[69999] = 0;
  memcpy(huge, "Bearer ", 7);
  EXPECT(check(auth, "/api/1", huge, NULL, 1) == JWKA_AUTH_OUTCOME_INVALID, "oversized token");
  free(huge);
  JwkaAuthResult res;
  EXPECT(jwka_auth_check(NULL, (JwkaRequest){0}, JWKA_WAIT_BLOCK, &res, NULL) == JWKA_STATUS_NULL_ARGUMENT, "check null");
  EXPECT(!jwka_auth_sets_headers(NULL), "sets headers of null");

  /* Logs: drain, then close wakes and ends. */
  int events = 0;
  for (;;) {
    JwkaStatus st = jwka_aggregator_next_log(agg, 0, &lvl, &msg);
    if (st != JWKA_STATUS_OK) {
      EXPECT(st == JWKA_STATUS_EMPTY, "log drained");
      break;
    }
    events++;
    jwka_buf_free(msg);
  }
  EXPECT(events > 0, "some log events");
  jwka_aggregator_close(agg);
  EXPECT(jwka_aggregator_next_log(agg, 1000, &lvl, &msg) == JWKA_STATUS_CLOSED, "closed");

  /* The checker keeps the keys alive after the aggregator is gone. */
  jwka_aggregator_free(agg);
  EXPECT(check(auth, "/api/1", bearer, NULL, 0) == JWKA_AUTH_OUTCOME_ALLOW, "checker outlives aggregator");
  jwka_auth_free(auth);

  printf("harness: %d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
