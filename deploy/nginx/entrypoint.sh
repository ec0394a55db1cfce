#!/bin/sh
# Fills the resolver and upstream into nginx.conf, checks it, runs nginx in the foreground.
set -eu
resolver=${NGINX_RESOLVER:-$(awk '$1 == "nameserver" {print $2; exit}' /etc/resolv.conf)}
case $resolver in *:*) resolver="[$resolver]" ;; esac
upstream=${RELUD_UPSTREAM:-relud:8080}
sed -e "s|@RESOLVER@|$resolver|" -e "s|@UPSTREAM@|$upstream|" \
    /etc/nginx/nginx.conf.template >/etc/nginx/nginx.conf
nginx -t -q
exec nginx -g 'daemon off;'
