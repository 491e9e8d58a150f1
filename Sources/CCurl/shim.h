#ifndef WARDEN_CCURL_SHIM_H
#define WARDEN_CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: typed wrappers. */

static inline CURLcode warden_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warden_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warden_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warden_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode warden_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

typedef size_t (*warden_curl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*warden_curl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode warden_curl_setopt_data_callback(CURL *handle, CURLoption option, warden_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

static inline CURLcode warden_curl_setopt_progress_callback(CURL *handle, warden_curl_progress_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

static inline CURLcode warden_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode warden_curl_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode warden_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }

static inline long warden_curl_tls12(void) { return CURL_SSLVERSION_TLSv1_2; }
static inline long warden_curl_http_version_1_1(void) { return CURL_HTTP_VERSION_1_1; }

#endif
