/* The embedded cluster's decisions (src/daemon/embedded_cluster.c): member lists parsed
 * from etcd's JSON, the odd target, and what a host's member does next in each
 * situation (no I/O). */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "embedded_int.h"
#include "test_int.h"

/* Three started voters m1..m3 (peer :2381..:2383, client :2371..:2373). */
#define M(n, learner)                                                                              \
	"{\"ID\":\"" #n "00\",\"name\":\"m" #n "\",\"peerURLs\":[\"http://h:238" #n                \
	"\"],\"clientURLs\":[\"http://h:237" #n "\"]" learner "}"
#define LIST3 "{\"header\":{},\"members\":[" M(3, ) "," M(1, ) "," M(2, ) "]}"

static void parse(const char *json, struct vfe_list *l)
{
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(vfe_list_parse(json, strlen(json), l, &err), VF_OK);
	for (size_t i = 0; i < l->n; i++)
		l->m[i].healthy = l->m[i].nclient > 0;
}

static struct vfe_input in_for(const struct vfe_list *l, const char *name, int manager)
{
	static char peer[64];
	struct vfe_input in = {0};

	snprintf(peer, sizeof(peer), "http://h:238%c", name[1]);
	in.manager = manager;
	in.reachable = 1;
	in.managers = 3;
	in.max_members = 5;
	in.name = name;
	in.peer_url = peer;
	in.list = l;
	return in;
}

static void test_embedded_parse(void)
{
	struct vfe_list l;
	struct vf_buf b = {0};
	char desc[256];
	const char *j = "{\"members\":[{\"ID\":\"16104868352963055141\",\"peerURLs\":[\"http://"
	                "h:2384\"],\"isLearner\":true}," M(2, ) "," M(1, ) "]}";

	parse(j, &l);
	CU_ASSERT_EQUAL_FATAL(l.n, 3);
	CU_ASSERT_STRING_EQUAL(l.m[0].name, "m1"); /* sorted, the nameless last */
	CU_ASSERT_STRING_EQUAL(l.m[1].name, "m2");
	CU_ASSERT_STRING_EQUAL(l.m[2].name, "");
	CU_ASSERT_EQUAL(l.m[2].id, 16104868352963055141ULL);
	CU_ASSERT(l.m[2].learner);
	CU_ASSERT_EQUAL(l.m[2].nclient, 0);
	CU_ASSERT_EQUAL(l.m[0].id, 100);
	CU_ASSERT_PTR_EQUAL(vfe_list_find(&l, "m2", NULL), &l.m[1]);
	CU_ASSERT_PTR_EQUAL(vfe_list_find(&l, "m4", "http://h:2384"), &l.m[2]);
	CU_ASSERT_PTR_NULL(vfe_list_find(&l, "m5", "http://h:2385"));
	CU_ASSERT_EQUAL(vfe_list_endpoints(&l, &b), VF_OK);
	CU_ASSERT_STRING_EQUAL(b.data, "http://h:2371\nhttp://h:2372\n"); /* no learner */
	vfe_list_describe(&l, desc, sizeof(desc));
	CU_ASSERT_STRING_EQUAL(
	        desc, "m1(voter,healthy) m2(voter,healthy) http://h:2384(learner,not started)");
	vf_buf_free(&b);
	vfe_list_clear(&l);
	struct vf_err err = {0};

	CU_ASSERT_NOT_EQUAL(vfe_list_parse("{\"x\":1}", 7, &l, &err), VF_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "members"));
}

static void test_embedded_target(void)
{
	static const int want[] = {1, 1, 1, 3, 3, 5, 5, 5, 5};

	for (int m = 0; m <= 8; m++)
		CU_ASSERT_EQUAL(vfe_target(m, 5), want[m]);
	CU_ASSERT_EQUAL(vfe_target(9, 4), 3); /* an even cap is lowered */
	CU_ASSERT_EQUAL(vfe_quorum(3), 2);
	CU_ASSERT_EQUAL(vfe_quorum(2), 2);
	CU_ASSERT_EQUAL(vfe_quorum(4), 3);
}

static void test_embedded_no_cluster(void)
{
	struct vfe_input in = in_for(NULL, "m1", 1);
	struct vfe_decision d;

	in.reachable = 0;
	in.bootstrapper = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_BOOTSTRAP);
	in.bootstrapper = 0;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_WAIT); /* never a second cluster */
	in.have_data = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_START); /* whole-cluster restart: on its data */
	in.running = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_NONE);
	in.manager = 0;
	in.have_data = in.running = 0;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_NONE);
}

static void test_embedded_join(void)
{
	struct vfe_list l;
	struct vfe_input in;
	struct vfe_decision d;

	parse("{\"members\":[" M(1, ) "]}", &l);
	in = in_for(&l, "m2", 1);
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_JOIN);
	l.m[0].healthy = 0; /* never add while a member is unhealthy */
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_WAIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "member m1 is unhealthy"));
	in.managers = 2; /* 2 managers: 1 member, the second stands by */
	l.m[0].healthy = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_STANDBY);
	vfe_list_clear(&l);

	/* a learner waiting: no second add */
	parse("{\"members\":[" M(1, ) "," M(2, ",\"isLearner\":true") "]}", &l);
	in = in_for(&l, "m3", 1);
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_WAIT);
	CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "m2 is a learner"));
	/* the learner itself, started: promote */
	in = in_for(&l, "m2", 1);
	in.running = in.have_data = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_PROMOTE);
	vfe_list_clear(&l);

	/* 4 managers, 3 members: the 4th stands by */
	parse(LIST3, &l);
	in = in_for(&l, "m4", 1);
	in.managers = 4;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_STANDBY);
	in.managers = 5;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_JOIN);
	in.max_members = 3;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_STANDBY);
	vfe_list_clear(&l);

	/* added earlier (nameless, no client URL), not started: start with "existing" */
	parse("{\"members\":[" M(1, ) ",{\"ID\":\"7\",\"peerURLs\":[\"http://h:2382\"],"
	                              "\"isLearner\":true}]}",
	      &l);
	in = in_for(&l, "m2", 1);
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_START_JOINING);
	vfe_list_clear(&l);
}

static void test_embedded_leave(void)
{
	struct vfe_list l;
	struct vfe_input in;
	struct vfe_decision d;

	parse(LIST3, &l);
	in = in_for(&l, "m2", 0); /* demoted */
	in.running = in.have_data = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_LEAVE);
	CU_ASSERT_EQUAL(d.remove_id, 200);
	l.m[2].healthy = 0; /* m3 down: m1 alone is no quorum of {m1, m3} */
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_REFUSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "refused: removing member m2 would lose quorum"));
	CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "2 voting members left, 1 of them healthy, 2 needed"));
	/* m3 itself, down and demoted: removing a dead member costs nothing */
	in = in_for(&l, "m3", 0);
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_LEAVE);
	vfe_list_clear(&l);

	parse("{\"members\":[" M(1, ) "]}", &l);
	in = in_for(&l, "m1", 0);
	in.running = in.have_data = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_REFUSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(d.why, "last voting member"));
	vfe_list_clear(&l);

	/* a worker that is no member but has data: wipe; with nothing: none */
	parse(LIST3, &l);
	in = in_for(&l, "m4", 0);
	in.have_data = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_WIPE);
	in.have_data = 0;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_NONE);
	vfe_list_clear(&l);
}

static void test_embedded_rejoin(void)
{
	struct vfe_list l;
	struct vfe_input in;
	struct vfe_decision d;

	parse(LIST3, &l);
	l.m[1].healthy = 0; /* m2 is back with its data lost */
	in = in_for(&l, "m2", 1);
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_REJOIN);
	CU_ASSERT_EQUAL(d.remove_id, 200);
	l.m[2].healthy = 0; /* and m3 is down too: no removal */
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_REFUSED);
	l.m[2].healthy = 1;
	in.have_data = 1; /* data there, not running: just start */
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_START);
	in.running = 1;
	l.m[1].healthy = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_NONE);
	vfe_list_clear(&l);

	/* a manager not in the list with data: it was removed while away */
	parse("{\"members\":[" M(1, ) "," M(3, ) "]}", &l);
	in = in_for(&l, "m2", 1);
	in.have_data = 1;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_WIPE);
	in.have_data = 0;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_JOIN);
	vfe_list_clear(&l);
}

static void test_embedded_shrink(void)
{
	struct vfe_list l;
	struct vfe_input in;
	struct vfe_decision d;

	parse(LIST3, &l);
	in = in_for(&l, "m3", 1);
	in.running = in.have_data = 1;
	in.managers = 2; /* target 1: the greatest name leaves */
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_LEAVE);
	in = in_for(&l, "m1", 1);
	in.running = in.have_data = 1;
	in.managers = 2;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_NONE);
	l.m[0].healthy = 0; /* not while a member is unhealthy */
	in = in_for(&l, "m3", 1);
	in.running = in.have_data = 1;
	in.managers = 2;
	vfe_decide(&in, &d);
	CU_ASSERT_EQUAL(d.action, VFE_WAIT);
	vfe_list_clear(&l);
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("embedded_cluster", NULL, NULL);

	if (s == NULL)
		vf_test_abort("embedded_cluster suite");
	VF_ADD_TEST(s, test_embedded_parse);
	VF_ADD_TEST(s, test_embedded_target);
	VF_ADD_TEST(s, test_embedded_no_cluster);
	VF_ADD_TEST(s, test_embedded_join);
	VF_ADD_TEST(s, test_embedded_leave);
	VF_ADD_TEST(s, test_embedded_rejoin);
	VF_ADD_TEST(s, test_embedded_shrink);
}
