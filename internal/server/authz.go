package server

import (
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// check is one permission a request needs: an operation on a resource.
// Checks run before the request is served, so a refusal is the same
// PermissionDenied whether or not the resource exists: it tells the
// caller nothing about what it may not see (Kafka's
// TOPIC_AUTHORIZATION_FAILED works alike).
type check struct {
	op   auth.Operation
	res  auth.ResourceType
	name string
	// anyName passes when op is allowed on any existing resource of the
	// type (or on the cluster).
	anyName bool
}

// clusterResource is the name of the one cluster resource.
const clusterResource = "cluster"

// queueResource is a queue group's resource name: its topic and name.
func queueResource(topic, group string) string { return topic + "/" + group }

// checksFor maps a request to the permissions it needs. A request type
// missing here is refused (ok false): a new RPC cannot slip through
// unchecked. Lists (ListTopics, Metadata without topics, ListGroups,
// ListQueueGroups) need nothing here; their handlers leave out what the
// caller may not describe.
func checksFor(req any) (cs []check, ok bool) {
	topic := func(op auth.Operation, name string) check { return check{op: op, res: auth.ResourceTopic, name: name} }
	group := func(op auth.Operation, name string) check { return check{op: op, res: auth.ResourceGroup, name: name} }
	queue := func(op auth.Operation, t, g string) check {
		return check{op: op, res: auth.ResourceQueue, name: queueResource(t, g)}
	}
	admin := []check{{op: auth.OpAdmin, res: auth.ResourceCluster, name: clusterResource}}
	switch r := req.(type) {
	case *stratav1.MetadataRequest:
		for _, t := range r.Topics {
			cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceTopic, name: t})
		}
	case *stratav1.ListTopicsRequest, *stratav1.ListGroupsRequest, *stratav1.ListQueueGroupsRequest,
		*stratav1.WhoAmIRequest:
	case *stratav1.InitProducerRequest:
		// Allocating (or restarting, which fences) a producer id needs the
		// right to produce to some topic, as Kafka's IdempotentWrite or
		// Write on any topic: checked by Security.authorize (anyTopic).
		cs = append(cs, check{op: auth.OpProduce, res: auth.ResourceTopic, anyName: true})
	case *stratav1.CreateTopicRequest:
		cs = append(cs, topic(auth.OpCreate, r.Name))
	case *stratav1.DeleteTopicRequest:
		cs = append(cs, topic(auth.OpDelete, r.Name))
	case *stratav1.DescribeTopicRequest:
		cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceTopic, name: r.Name})
	case *stratav1.ProduceRequest:
		cs = append(cs, topic(auth.OpProduce, r.Topic))
	case *stratav1.FetchRequest:
		cs = append(cs, topic(auth.OpConsume, r.Topic))
	case *stratav1.ListOffsetsRequest:
		cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceTopic, name: r.Topic})
	case *stratav1.JoinGroupRequest:
		cs = append(cs, group(auth.OpConsume, r.Group))
		for _, t := range r.Topics {
			cs = append(cs, topic(auth.OpConsume, t))
		}
	case *stratav1.HeartbeatRequest:
		cs = append(cs, group(auth.OpConsume, r.Group))
	case *stratav1.LeaveGroupRequest:
		cs = append(cs, group(auth.OpConsume, r.Group))
	case *stratav1.CommitOffsetsRequest:
		cs = append(cs, group(auth.OpConsume, r.Group))
		for _, o := range r.Offsets {
			cs = append(cs, topic(auth.OpConsume, o.Topic))
		}
	case *stratav1.FetchOffsetsRequest:
		cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceGroup, name: r.Group})
	case *stratav1.DescribeGroupRequest:
		cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceGroup, name: r.Group})
	case *stratav1.ResetOffsetsRequest:
		cs = append(cs, group(auth.OpAdmin, r.Group), topic(auth.OpConsume, r.Topic))
	case *stratav1.CreateQueueGroupRequest:
		// The group's dead-letter topic is written (and created) by the
		// broker for the caller: the caller needs those rights on it.
		dlq := r.GetSettings().GetDeadLetterTopic()
		if dlq == "" {
			dlq = broker.DeadLetterTopicFor(r.Topic, r.Group)
		}
		cs = append(cs, queue(auth.OpCreate, r.Topic, r.Group), topic(auth.OpConsume, r.Topic),
			topic(auth.OpProduce, dlq), topic(auth.OpCreate, dlq))
	case *stratav1.DescribeQueueGroupRequest:
		cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceQueue, name: queueResource(r.Topic, r.Group)})
	case *stratav1.QueueReceiveRequest:
		cs = append(cs, queue(auth.OpConsume, r.Topic, r.Group), topic(auth.OpConsume, r.Topic))
	case *stratav1.QueueSettleRequest:
		cs = append(cs, queue(auth.OpConsume, r.Topic, r.Group))
	case *stratav1.RedriveQueueGroupRequest:
		// A redrive writes dead letters back into the topic (the handler
		// also checks consume on the dead-letter topic it reads).
		cs = append(cs, queue(auth.OpAdmin, r.Topic, r.Group), topic(auth.OpProduce, r.Topic))
	case *stratav1.ResetQueueGroupRequest:
		cs = append(cs, queue(auth.OpAdmin, r.Topic, r.Group))
	case *stratav1.ClusterStatusRequest:
		cs = append(cs, check{op: auth.OpDescribe, res: auth.ResourceCluster, name: clusterResource})
	case *stratav1.RemoveNodeRequest, *stratav1.PutUserRequest, *stratav1.DeleteUserRequest,
		*stratav1.ListUsersRequest, *stratav1.AddACLRequest, *stratav1.RemoveACLRequest,
		*stratav1.ListACLsRequest, *stratav1.GossipKeyRequest:
		cs = admin
	default:
		return nil, false
	}
	return cs, true
}

// adminAction names the requests the audit log records as admin changes,
// with their target; "" for the others.
func adminAction(req any) (action, target string) {
	switch r := req.(type) {
	case *stratav1.CreateTopicRequest:
		return "create_topic", r.Name
	case *stratav1.DeleteTopicRequest:
		return "delete_topic", r.Name
	case *stratav1.ResetOffsetsRequest:
		return "reset_offsets", r.Group + " " + r.Topic
	case *stratav1.CreateQueueGroupRequest:
		return "create_queue_group", queueResource(r.Topic, r.Group)
	case *stratav1.RedriveQueueGroupRequest:
		return "redrive_queue_group", queueResource(r.Topic, r.Group)
	case *stratav1.ResetQueueGroupRequest:
		return "reset_queue_group", queueResource(r.Topic, r.Group)
	case *stratav1.RemoveNodeRequest:
		return "remove_node", r.Id
	case *stratav1.PutUserRequest:
		if r.Update {
			return "change_user", r.Name
		}
		return "create_user", r.Name
	case *stratav1.DeleteUserRequest:
		return "delete_user", r.Name
	case *stratav1.AddACLRequest:
		return "add_acl", aclFromProto(r.Acl).String()
	case *stratav1.RemoveACLRequest:
		return "remove_acl", aclFromProto(r.Acl).String()
	case *stratav1.GossipKeyRequest:
		if r.Action != "list" {
			return "gossip_key_" + r.Action, ""
		}
	}
	return "", ""
}
