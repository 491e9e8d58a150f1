#ifndef WARDEN_CCURL_H
#define WARDEN_CCURL_H
/*
 * libcurl, loaded on first use.
 *
 * The agent needs HTTPS only now and then (the TUF and block fallbacks, EST enrollment and renewal), and libcurl
 * brings some forty shared libraries (GnuTLS, Kerberos, LDAP, SSH, RTMP...) whose start-up and pages would otherwise
 * stay resident for the agent's whole life. So nothing links libcurl: `warden_curl_load` opens libcurl.so.4 with
 * dlopen the first time a transfer is made, and every other function here calls through the table it filled.
 *
 * Types and constants still come from <curl/curl.h> (libcurl4-openssl-dev). curl_easy_setopt and curl_easy_getinfo
 * are variadic, which Swift cannot call, so they have typed wrappers.
 */
#include <stddef.h>
#include <curl/curl.h>

/// Loads libcurl once (thread-safe). Returns 0 when it is usable; otherwise -1 and a one-line reason in `error`
/// (always NUL-terminated when `length` > 0). Later calls return the first outcome.
int warden_curl_load(char *error, size_t length);

/// curl_global_init(CURL_GLOBAL_DEFAULT). Call after a successful load.
CURLcode warden_curl_global_init(void);
CURL *warden_curl_easy_init(void);
void warden_curl_easy_cleanup(CURL *handle);
CURLcode warden_curl_easy_perform(CURL *handle);
const char *warden_curl_easy_strerror(CURLcode code);
struct curl_slist *warden_curl_slist_append(struct curl_slist *list, const char *line);
void warden_curl_slist_free_all(struct curl_slist *list);

CURLcode warden_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode warden_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode warden_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode warden_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode warden_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);

typedef size_t (*warden_curl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*warden_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

CURLcode warden_curl_setopt_data_callback(CURL *handle, CURLoption option, warden_curl_data_callback callback);
CURLcode warden_curl_setopt_progress_callback(CURL *handle, warden_curl_progress_callback callback);
CURLcode warden_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode warden_curl_getinfo_string(CURL *handle, CURLINFO info, char **value);

static inline long warden_curl_tls12(void) { return CURL_SSLVERSION_TLSv1_2; }
static inline long warden_curl_http_version_1_1(void) { return CURL_HTTP_VERSION_1_1; }

#endif
