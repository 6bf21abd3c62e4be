/* account: the customer portal's API. JSON in and out; errors {"error":{"type","message","field"}}.
 * Signed-in requests carry the session cookie; see account.h for where each handler lives. */
#include "account.h"
#include "zg_route.h"
#include "zg_server.h"

static const zg_route routes[] = {
    {"POST", "/api/v1/account/signup", account_signup, -1},
    {"POST", "/api/v1/account/login", account_login, -1},
    {"POST", "/api/v1/account/logout", account_logout, -1},
    {"POST", "/api/v1/account/password", account_password, -1},
    {"POST", "/api/v1/account/reset", account_reset, -1},
    {"GET", "/api/v1/account", account_show, -1},
    {"GET", "/api/v1/account/session", account_session, -1},
    {"GET", "/api/v1/account/keys", account_keys_list, -1},
    {"POST", "/api/v1/account/keys", account_keys_create, -1},
    {"PATCH", "/api/v1/account/keys/*", account_keys_update, -1},
    {"DELETE", "/api/v1/account/keys/*", account_keys_revoke, -1},
    {"POST", "/api/v1/account/chat-key", account_chat_key, -1},
    {"GET", "/api/v1/account/usage", account_usage, -1},
    {"GET", "/api/v1/account/usage.csv", account_usage_csv, -1},
    {"GET", "/api/v1/account/requests", account_requests, -1},
    {"GET", "/api/v1/account/requests.csv", account_requests_csv, -1},
    {"GET", "/api/v1/account/statements/*", account_statement, -1},
    {"GET", "/api/v1/account/plans", account_plans, -1},
    {"POST", "/api/v1/account/checkout", account_checkout, -1},
    {"GET", "/api/v1/account/checkout/*", account_checkout_show, -1},
    {"GET", "/api/v1/account/receipts", account_receipts, -1},
    {"GET", "/api/v1/account/receipts/*", account_receipt, -1},
    {"POST", "/api/v1/stripe/webhook", account_stripe_webhook, -1},
};

static int handle(zg_req *r)
{
    return zg_dispatch(r, routes, sizeof routes / sizeof routes[0]);
}

int main(int argc, char **argv)
{
    return zg_server_main("account", ZG_PROTO_OPENAI, handle, argc, argv);
}
